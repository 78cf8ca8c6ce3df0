"""Users of a tenant: profiles kept from the claims of the tokens they present."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, IndexModel

from hub.auth import Identity
from hub.store import Doc, register_indexes
from resolvers.context import Context
from resolvers.loaders import Loader

register_indexes(
    "users",
    IndexModel([("tenant", ASCENDING), ("uid", ASCENDING)], unique=True),
    IndexModel([("tenant", ASCENDING), ("skills", ASCENDING)]),
)

_seen: dict[tuple[str, str], tuple[object, ...]] = {}


def profile_of(identity: Identity) -> Doc:
    return {
        "uid": identity.sub, "name": identity.name or identity.sub,
        "roles": sorted(identity.roles), "skills": list(identity.skills), "kcs": identity.kcs,
    }


async def remember(ctx: Context) -> None:
    """Upsert the caller's profile when its claims change (once per process otherwise)."""
    me = ctx.me
    key = (me.tenant, me.sub)
    fingerprint = (me.name, tuple(sorted(me.roles)), me.skills, me.kcs)
    if _seen.get(key) == fingerprint:
        return
    profile = profile_of(me)
    await ctx.db["users"].update_one(
        {"uid": me.sub},
        {"$set": {**profile, "seenAt": datetime.now(UTC)},
         "$setOnInsert": {"_id": f"usr|{me.tenant}|{me.sub}", "createdAt": datetime.now(UTC)}},
        upsert=True,
    )
    _seen[key] = fingerprint


def loader(ctx: Context) -> Loader[str, Doc]:
    """Users by id (`uid`), batched per request."""

    def make() -> Loader[str, Doc]:
        async def batch(uids: Sequence[str]) -> dict[str, Doc]:
            docs = await ctx.db["users"].find({"uid": {"$in": list(uids)}})
            return {d["uid"]: d for d in docs}

        return Loader(batch)

    result: Loader[str, Doc] = ctx.memo("users", make)
    return result


async def get(ctx: Context, uid: str) -> Doc | None:
    """A user of the caller's tenant; unknown ids resolve to a placeholder profile."""
    return await loader(ctx).load(uid)


def loaded(ctx: Context, uid: str) -> tuple[bool, Doc | None]:
    """`(True, doc)` when the request's loader has `uid` already (see :func:`prefetch`)."""
    return loader(ctx).peek(uid)


async def prefetch(ctx: Context, uids: Sequence[str | None]) -> None:
    """Load these users in one batch now, so fields resolving them need no await later.

    A failure is left to the fields themselves: they load (and fail) one by one as without it.
    """
    wanted = [uid for uid in dict.fromkeys(uids) if uid]
    if wanted:
        with contextlib.suppress(Exception):
            await loader(ctx).load_many(wanted)


def placeholder(uid: str) -> Doc:
    return {"uid": uid, "name": uid, "roles": [], "skills": []}


async def viewer(ctx: Context) -> Doc:
    await remember(ctx)
    return profile_of(ctx.me)


async def find_many(ctx: Context, uids: Sequence[str]) -> dict[str, Doc]:
    docs = await ctx.db["users"].find({"uid": {"$in": list(uids)}})
    return {d["uid"]: d for d in docs}


async def is_online(ctx: Context, uid: str) -> bool:
    """Whether `uid` is heartbeating anywhere; customers only learn it about themselves."""
    if not ctx.me.is_staff and uid != ctx.me.sub:
        return False

    def make() -> Loader[str, bool]:
        async def batch(uids: Sequence[str]) -> dict[str, bool]:
            from resolvers import presence

            found = await presence.online(ctx, list(uids))
            return {uid: uid in found for uid in uids}

        return Loader(batch)

    loader: Loader[str, bool] = ctx.memo("online", make)
    return bool(await loader.load(uid))
