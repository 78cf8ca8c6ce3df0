"""`collabhub seed`: a demo tenant built through the public GraphQL operations."""

from __future__ import annotations

import sys
from typing import Any

from hub.auth import Identity
from hub.runtime import Hub
from hub.settings import Settings

PEOPLE = {
    "carol": ("Carol Customer", ["customer"], []),
    "dan": ("Dan Customer", ["customer"], []),
    "alice": ("Alice Agent", ["agent"], ["printing", "networking"]),
    "erin": ("Erin Expert", ["expert"], ["networking", "vpn", "linux"]),
    "sam": ("Sam Supervisor", ["supervisor"], []),
    "ed": ("Ed Editor", ["editor", "agent"], ["knowledge"]),
}

CASES = [
    ("carol", "VPN drops every 10 minutes", "Since the update my VPN disconnects every 10 minutes.", ["vpn"]),
    ("carol", "Printer shows offline", "The office printer shows offline on Windows 11.", ["printing"]),
    ("dan", "Cannot reset my password", "The reset link in the email says it expired.", ["account"]),
    ("dan", "Invoice PDF is blank", "Downloading the invoice gives an empty PDF.", ["billing"]),
]


class Seeder:
    """Runs operations as demo users against the in-process schema (real resolvers, real store)."""

    def __init__(self, hub: Hub, tenant: str) -> None:
        from schema import build

        self.hub = hub
        self.tenant = tenant
        self.schema = build(hub.settings)

    async def run_as(self, sub: str, query: str, **variables: Any) -> dict[str, Any]:
        from resolvers.context import Context

        name, roles, skills = PEOPLE[sub]
        identity = Identity(sub=sub, tenant=self.tenant, roles=frozenset(roles), name=name,
                            skills=tuple(skills), kcs="publisher" if "editor" in roles else "contributor")
        result = await self.schema.execute(query, variable_values=variables,
                                           context_value=Context(hub=self.hub, identity=identity))
        if result.errors:
            raise RuntimeError(f"seed operation failed: {result.errors}")
        data: dict[str, Any] = result.data or {}
        return data


async def run(settings: Settings, tenant: str = "demo") -> None:
    hub = await Hub.start(settings)
    seeder = Seeder(hub, tenant)
    try:
        for sub in PEOPLE:
            await seeder.run_as(sub, "{ viewer { id } }")
        for i, (customer, subject, description, tags) in enumerate(CASES, 1):
            await seeder.run_as(
                "alice",
                """mutation($s: String!, $d: String!, $t: [String!], $c: ID) {
                  caseCreate(input: {subject: $s, description: $d, tags: $t, customerId: $c}) { errors { message } }
                }""",
                s=subject, d=description, t=tags, c=customer,
            )
            _progress("cases", i, len(CASES))
        print(f"\nSeeded tenant '{tenant}'. Try: collabhub token --sub alice --role agent --tenant {tenant}")
    finally:
        await hub.stop()


def _progress(what: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    sys.stdout.write(f"\r{what:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stdout.flush()
