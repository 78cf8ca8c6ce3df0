"""Swarming: pull matching experts into a case instead of escalating it tier by tier.

`swarmRequest` (staff) ranks experts for the skills (`resolvers.experts`, the requester excluded),
records the swarm (`swarms`: requester, skills, note, invited experts, members with join/leave
times, outcome), opens or reuses the case's SWARM chat room, and appends `swarm.requested` to the
case stream with the experts in `data.mentions`, so the inbox (`resolvers.notifications`) tells
each of them. `swarmJoin` / `swarmLeave` / `swarmClose` record members, times and the outcome,
each with its INTERNAL event on the case stream. One open swarm per case at a time; swarms are
internal collaboration: customers never see them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

import resolvers.notifications  # noqa: F401  (its inbox hook tells the mentioned experts)
from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, cases, chat, experts, users
from resolvers import members as members_
from resolvers.context import Context

register_indexes(
    "swarms",
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("createdAt", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("status", ASCENDING)]),
)

MAX_NOTE = 2000
MAX_OUTCOME = 2000
DEFAULT_EXPERTS = 5
MAX_EXPERTS = 20


async def get(ctx: Context, swarm_id: str) -> Doc | None:
    """A swarm (staff only, else `None`)."""
    if not ctx.me.is_staff:
        return None
    doc = await ctx.loader("swarms").load(swarm_id)
    if doc is None or await cases.get(ctx, doc["caseId"]) is None:
        return None
    return doc


async def of_case(ctx: Context, case_id: str) -> list[Doc]:
    """The swarms of a case, newest first (customers: none)."""
    if not ctx.me.is_staff or await cases.get(ctx, case_id) is None:
        return []
    return await ctx.db["swarms"].find({"caseId": case_id}, sort=[("createdAt", -1)], limit=50)


def _text(value: str | None, field: str, limit: int, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise invalid(f"{field} must not be empty", field)
    if len(text) > limit:
        raise invalid(f"{field} is longer than {limit} characters", field)
    return text


async def request(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff may swarm a case", "caseId")
    await users.remember(ctx)
    case = await cases.get(ctx, data.get("case_id") or "")
    if case is None:
        raise not_found("Case", "caseId")
    if case.get("status") == "CLOSED":
        raise invalid("A closed case cannot be swarmed", "caseId")
    skills = experts.normalise(data.get("skills") or []) or experts.normalise(case.get("skills") or [])
    if not skills:
        raise invalid("Name the skills needed (the case has none)", "skills")
    note = _text(data.get("note"), "note", MAX_NOTE)
    wanted = data.get("max_experts") or DEFAULT_EXPERTS
    if not 1 <= wanted <= MAX_EXPERTS:
        raise invalid(f"maxExperts must be between 1 and {MAX_EXPERTS}", "maxExperts")
    if await ctx.db["swarms"].find_one({"caseId": case["_id"], "status": "OPEN"}):
        raise conflict("The case already has an open swarm; join it or close it first", "caseId")
    ranked = await experts.rank(ctx, skills, exclude=[me.sub], limit=wanted)
    invited = [r.user["uid"] for r in ranked]
    now = datetime.now(UTC)
    swarm: Doc = {
        "_id": new_id("swarm"), "caseId": case["_id"], "requestedBy": me.sub, "skills": skills, "note": note,
        "status": "OPEN", "invited": invited, "members": [members_.entry(me.sub, now)],
        "roomId": None, "outcome": None, "createdAt": now, "closedAt": None, "version": 1,
    }

    async def write() -> Doc:
        room, created = await chat.ensure_case_room(ctx, case)
        if not created:
            await chat.add_member(ctx, room["_id"], me.sub)
        doc = {**swarm, "roomId": room["_id"]}
        await ctx.db["swarms"].insert(doc)
        await activity.emit(
            ctx, cases.stream(case["_id"]), "swarm.requested",
            f"{me.name} asked {len(invited)} expert(s) to swarm ({', '.join(skills)})",
            {"swarmId": doc["_id"], "skills": skills, "note": note, "invited": invited, "roomId": room["_id"],
             "mentions": invited},
            visibility=Visibility.INTERNAL,
        )
        return doc

    return {"swarm": await ctx.events.write(write)}


async def _open_swarm(ctx: Context, swarm_id: str | None) -> Doc:
    if not ctx.me.is_staff:
        raise forbidden("Only staff take part in swarms", "swarmId")
    swarm = await get(ctx, swarm_id or "")
    if swarm is None:
        raise not_found("Swarm", "swarmId")
    if swarm["status"] != "OPEN":
        raise invalid("The swarm is closed", "swarmId")
    return swarm


def _active(swarm: Doc, uid: str) -> bool:
    return members_.active(swarm["members"], uid)


async def _save(ctx: Context, swarm: Doc, changes: dict[str, Any]) -> Doc:
    """Apply `changes` if nobody changed the swarm since it was read (inside a write)."""
    updated = await ctx.db["swarms"].find_one_and_update(
        {"_id": swarm["_id"], "version": swarm["version"]}, {"$set": changes, "$inc": {"version": 1}}
    )
    if updated is None:
        raise conflict("The swarm changed meanwhile; retry", "swarmId")
    ctx.loader("swarms").clear(swarm["_id"])
    return updated


async def join(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Join an open swarm (idempotent) and its room."""
    me = ctx.me
    swarm = await _open_swarm(ctx, data.get("swarm_id"))
    if _active(swarm, me.sub):
        return {"swarm": swarm}
    await users.remember(ctx)

    async def write() -> Doc:
        members = [*swarm["members"], members_.entry(me.sub)]
        updated = await _save(ctx, swarm, {"members": members})
        if swarm.get("roomId"):
            await chat.add_member(ctx, swarm["roomId"], me.sub)
        await activity.emit(ctx, cases.stream(swarm["caseId"]), "swarm.joined", f"{me.name} joined the swarm",
                            {"swarmId": swarm["_id"], "userId": me.sub}, visibility=Visibility.INTERNAL)
        return updated

    return {"swarm": await ctx.events.write(write)}


async def leave(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Leave a swarm one is in (the room stays readable)."""
    me = ctx.me
    swarm = await _open_swarm(ctx, data.get("swarm_id"))
    if not _active(swarm, me.sub):
        raise invalid("You are not in this swarm", "swarmId")

    async def write() -> Doc:
        now = datetime.now(UTC)
        members = members_.leave(swarm["members"], me.sub, now)
        updated = await _save(ctx, swarm, {"members": members})
        await activity.emit(ctx, cases.stream(swarm["caseId"]), "swarm.left", f"{me.name} left the swarm",
                            {"swarmId": swarm["_id"], "userId": me.sub}, visibility=Visibility.INTERNAL)
        return updated

    return {"swarm": await ctx.events.write(write)}


async def close(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Close a swarm with its outcome (the requester, an active member or a supervisor)."""
    me = ctx.me
    swarm = await _open_swarm(ctx, data.get("swarm_id"))
    if not (swarm["requestedBy"] == me.sub or _active(swarm, me.sub) or me.is_supervisor):
        raise forbidden("Only the requester, a member or a supervisor may close the swarm", "swarmId")
    outcome = _text(data.get("outcome"), "outcome", MAX_OUTCOME, required=True)

    async def write() -> Doc:
        now = datetime.now(UTC)
        members = members_.leave(swarm["members"], None, now)
        updated = await _save(ctx, swarm, {"members": members, "status": "CLOSED", "outcome": outcome,
                                           "closedAt": now, "closedBy": me.sub})
        await activity.emit(ctx, cases.stream(swarm["caseId"]), "swarm.closed", f"{me.name} closed the swarm",
                            {"swarmId": swarm["_id"], "outcome": outcome,
                             "members": sorted({m["uid"] for m in swarm["members"]})},
                            visibility=Visibility.INTERNAL)
        return updated

    return {"swarm": await ctx.events.write(write)}
