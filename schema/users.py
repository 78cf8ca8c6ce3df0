"""GraphQL types and root fields of users."""

from __future__ import annotations

from typing import Any

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
    online: bool = False

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(doc["uid"]), name=doc.get("name") or doc["uid"],
            roles=list(doc.get("roles") or []), skills=list(doc.get("skills") or []),
            kcs=doc.get("kcs"), online=bool(doc.get("online", False)),
        )


async def user_ref(info: Info, uid: str | None) -> User | None:
    """Resolve a user id through the request's batching loader."""
    if not uid:
        return None
    doc = await users.get(ctx(info), uid)
    return User.from_doc(doc or users.placeholder(uid))


@strawberry.type
class Query:
    @strawberry.field(description="The caller, from the token's claims.")
    async def viewer(self, info: Info) -> User:
        return User.from_doc(await query(users.viewer(ctx(info))))
