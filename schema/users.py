"""GraphQL types and root fields of users."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Self

import strawberry

from resolvers import users
from schema.common import Info, ctx, query


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    roles: list[str]
    skills: list[str]
    kcs: str | None = None
    online_hint: strawberry.Private[bool | None] = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(doc["uid"]), name=doc.get("name") or doc["uid"],
            roles=list(doc.get("roles") or []), skills=list(doc.get("skills") or []),
            kcs=doc.get("kcs"), online_hint=doc.get("online"),
        )

    @strawberry.field(description="Heartbeating on any device (customers see only their own).")
    async def online(self, info: Info) -> bool:
        if self.online_hint is not None:
            return self.online_hint
        return await users.is_online(ctx(info), str(self.id))


async def user_ref(info: Info, uid: str | None) -> User | None:
    """Resolve a user id through the request's batching loader."""
    if not uid:
        return None
    doc = await users.get(ctx(info), uid)
    return User.from_doc(doc or users.placeholder(uid))


def user_now(info: Info, uid: str | None) -> User | Awaitable[User | None] | None:
    """:func:`user_ref` without a coroutine when the user is loaded already (`users.prefetch`):
    a sync field returning this skips graphql-core's awaitable path (tasks, gathers)."""
    if not uid:
        return None
    hit, doc = users.loaded(ctx(info), uid)
    if hit:
        return User.from_doc(doc or users.placeholder(uid))
    return user_ref(info, uid)


@strawberry.type
class Query:
    @strawberry.field(description="The caller, from the token's claims.")
    async def viewer(self, info: Info) -> User:
        return User.from_doc(await query(users.viewer(ctx(info))))


@strawberry.type
class Membership:
    """Who joined a swarm or remote session, when, and whether they are still in."""

    joined_at: datetime
    left_at: datetime | None
    active: bool
    uid: strawberry.Private[str]

    @strawberry.field
    async def user(self, info: Info) -> User:
        found = await user_ref(info, self.uid)
        assert found is not None
        return found

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Self:
        return cls(joined_at=entry["joinedAt"], left_at=entry.get("leftAt"),
                   active=entry.get("leftAt") is None, uid=entry["uid"])

