"""Remote-support sessions on a case, and the WebRTC signalling relay between their participants.

A session (`remote_sessions`) belongs to a case; staff create it and invite experts and/or the
case's customer (customers who are not on the case are refused). Invitees join and leave; the host
or a supervisor ends it. Each of these is audited on the case stream (`remote.created`, `.joined`,
`.left`, `.ended`): PUBLIC when a customer is invited (they take part, so they see the trail),
INTERNAL otherwise. `remote.created` mentions the invitees, so the inbox tells them.

Signalling: `remoteSignalSend` relays an OFFER / ANSWER / ICE / CONTROL payload (JSON, at most
16 KiB encoded) to one addressee over the bus channel `<tenant>|remote:<session>:<uid>`; only
joined participants of an active session may send or receive, and nothing is stored (media and
its negotiation stay peer-to-peer; the hub only relays). Signals are rate-limited per sender.
Leaving or ending closes the affected `remoteSignals` streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.bus import BusBackendError, Resync, SubscriberOverflow
from hub.errors import ErrorCode, HubError, conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, cases, members, presence, users
from resolvers.context import Context

register_indexes(
    "remote_sessions", IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING), ("createdAt", DESCENDING)]),
)

KINDS = ("OFFER", "ANSWER", "ICE", "CONTROL")
MAX_PAYLOAD = 16 * 1024
MAX_INVITEES = 20
SIGNAL_LIMIT = (300, 10.0)
"""At most 300 signals per sender and session in 10 s (ICE candidates come in bursts)."""
_END = "__end__"


def channel(tenant: str, session_id: str, uid: str) -> str:
    return f"{tenant}|remote:{session_id}:{json.dumps(uid)}"


def joined(session: Doc, uid: str) -> bool:
    return members.active(session["participants"], uid)


async def get(ctx: Context, session_id: str) -> Doc | None:
    """The session if the caller may see it: staff on a readable case, customers if invited."""
    me = ctx.me
    doc = await ctx.loader("remote_sessions").load(session_id)
    if doc is None or await cases.get(ctx, doc["caseId"]) is None:
        return None
    return doc if me.is_staff or me.sub in doc["invitees"] else None


async def of_case(ctx: Context, case_id: str) -> list[Doc]:
    me = ctx.me
    if await cases.get(ctx, case_id) is None:
        return []
    query: dict[str, Any] = {"caseId": case_id}
    if not me.is_staff:
        query["invitees"] = me.sub
    return await ctx.db["remote_sessions"].find(query, sort=[("createdAt", -1)], limit=50)


def _visibility(session: Doc) -> Visibility:
    return Visibility.PUBLIC if session.get("customerInvited") else Visibility.INTERNAL


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff start remote sessions", "caseId")
    await users.remember(ctx)
    case = await cases.get(ctx, data.get("case_id") or "")
    if case is None:
        raise not_found("Case", "caseId")
    invitees = [u for u in dict.fromkeys(i.strip() for i in data.get("invitees") or []) if u and u != me.sub]
    if not invitees:
        raise invalid("Invite at least one expert or the customer", "invitees")
    if len(invitees) > MAX_INVITEES:
        raise invalid(f"At most {MAX_INVITEES} invitees", "invitees")
    profiles = await users.find_many(ctx, invitees)
    unknown = [u for u in invitees if u not in profiles]
    if unknown:
        raise invalid(f"Unknown users: {', '.join(unknown[:10])}", "invitees")
    customers = {u for u in invitees if not set(profiles[u].get("roles") or []) & STAFF_ROLES}
    if customers - {case.get("customerId"), *(case.get("participants") or [])}:
        raise forbidden("Only the customers of this case can be invited", "invitees")
    now = datetime.now(UTC)
    session: Doc = {
        "_id": new_id("remote"), "caseId": case["_id"], "hostId": me.sub, "invitees": [me.sub, *invitees],
        "participants": [members.entry(me.sub, now)], "status": "ACTIVE",
        "customerInvited": bool(customers), "createdAt": now, "endedAt": None, "version": 1,
    }

    async def write() -> None:
        await ctx.db["remote_sessions"].insert(session)
        await activity.emit(ctx, cases.stream(case["_id"]), "remote.created",
                            f"{me.name} started a remote-support session",
                            {"sessionId": session["_id"], "invitees": invitees, "mentions": invitees},
                            visibility=_visibility(session))

    await ctx.events.write(write)
    return {"session": session}


async def _active(ctx: Context, session_id: str | None) -> Doc:
    session = await get(ctx, session_id or "")
    if session is None:
        raise not_found("Remote session", "sessionId")
    if session["status"] != "ACTIVE":
        raise invalid("The session has ended", "sessionId")
    return session


async def _save(ctx: Context, session: Doc, changes: dict[str, Any]) -> Doc:
    updated = await ctx.db["remote_sessions"].find_one_and_update(
        {"_id": session["_id"], "version": session["version"]}, {"$set": changes, "$inc": {"version": 1}}
    )
    if updated is None:
        raise conflict("The session changed meanwhile; retry", "sessionId")
    ctx.loader("remote_sessions").clear(session["_id"])
    return updated


async def _audit(ctx: Context, session: Doc, kind: str, summary: str, data: dict[str, Any] | None = None) -> None:
    await activity.emit(ctx, cases.stream(session["caseId"]), kind, summary,
                        {"sessionId": session["_id"], **(data or {})}, visibility=_visibility(session))


async def join(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    session = await _active(ctx, data.get("session_id"))
    if me.sub not in session["invitees"]:
        raise forbidden("You are not invited to this session", "sessionId")
    if joined(session, me.sub):
        return {"session": session}
    await users.remember(ctx)

    async def write() -> Doc:
        parts = [*session["participants"], members.entry(me.sub)]
        updated = await _save(ctx, session, {"participants": parts})
        await _audit(ctx, session, "remote.joined", f"{me.name} joined the remote session", {"userId": me.sub})
        return updated

    return {"session": await ctx.events.write(write)}


async def leave(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    session = await _active(ctx, data.get("session_id"))
    if not joined(session, me.sub):
        raise invalid("You are not in this session", "sessionId")

    async def write() -> Doc:
        now = datetime.now(UTC)
        parts = members.leave(session["participants"], me.sub, now)
        updated = await _save(ctx, session, {"participants": parts})
        await _audit(ctx, session, "remote.left", f"{me.name} left the remote session", {"userId": me.sub})
        return updated

    updated = await ctx.events.write(write)
    await _close_streams(ctx, updated["_id"], [me.sub])
    return {"session": updated}


async def end(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    session = await _active(ctx, data.get("session_id"))
    if session["hostId"] != me.sub and not me.is_supervisor:
        raise forbidden("Only the host or a supervisor may end the session", "sessionId")

    async def write() -> Doc:
        now = datetime.now(UTC)
        parts = members.leave(session["participants"], None, now)
        updated = await _save(ctx, session, {"participants": parts, "status": "ENDED", "endedAt": now,
                                             "endedBy": me.sub})
        await _audit(ctx, session, "remote.ended", f"{me.name} ended the remote session")
        return updated

    updated = await ctx.events.write(write)
    await _close_streams(ctx, updated["_id"], [p["uid"] for p in session["participants"]])
    return {"session": updated}


async def _close_streams(ctx: Context, session_id: str, uids: list[str]) -> None:
    for uid in set(uids):
        try:
            await ctx.hub.bus.publish(channel(ctx.me.tenant, session_id, uid), json.dumps({"kind": _END}))
        except BusBackendError:
            pass  # their stream ends at its next signal check instead


async def send_signal(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Relay one signal to one joined participant; nothing is stored."""
    me = ctx.me
    session = await _active(ctx, data.get("session_id"))
    if not joined(session, me.sub):
        raise forbidden("Join the session before signalling", "sessionId")
    to = (data.get("to") or "").strip()
    if to == me.sub or not joined(session, to):
        raise invalid("`to` must be another joined participant of this session", "to")
    kind = data.get("kind")
    if kind not in KINDS:
        raise invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    try:
        payload = json.dumps(data.get("payload"), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise invalid("payload must be JSON", "payload") from exc
    if len(payload.encode()) > MAX_PAYLOAD:
        raise invalid(f"payload is larger than {MAX_PAYLOAD} bytes", "payload")
    if not await presence.store(ctx).allow(f"signal:{me.tenant}:{me.sub}:{session['_id']}", *SIGNAL_LIMIT):
        raise HubError(ErrorCode.RATE_LIMITED, "Too many signals; slow down")
    signal = {"id": new_id("sig"), "sessionId": session["_id"], "kind": kind, "from": me.sub, "to": to,
              "payload": data.get("payload"), "sentAt": datetime.now(UTC).isoformat()}
    try:
        await ctx.hub.bus.publish(channel(me.tenant, session["_id"], to), json.dumps(signal))
    except BusBackendError as exc:
        raise HubError(ErrorCode.UNAVAILABLE, "Signalling is unavailable; retry shortly") from exc
    return {"signal": signal}


async def authorize_signals(ctx: Context, session_id: str) -> Doc:
    """`remoteSignals` is for joined participants of an active session."""
    session = await _active(ctx, session_id)
    if not joined(session, ctx.me.sub):
        raise forbidden("Join the session to receive its signals", "sessionId")
    return session


async def signals(ctx: Context, session_id: str) -> AsyncIterator[dict[str, Any]]:
    """Signals addressed to the caller, until they leave or the session ends."""
    me = ctx.me
    recheck = ctx.hub.settings.token_recheck_s
    async with ctx.hub.bus.subscribe(channel(me.tenant, session_id, me.sub)) as sub:
        await authorize_signals(ctx.fresh(), session_id)  # still joined now that we listen
        while True:
            if ctx.identity is None or ctx.identity.expired(time.time() - activity.EXPIRY_GRACE):
                raise HubError(ErrorCode.UNAUTHENTICATED, "Token expired")
            try:
                raw = await asyncio.wait_for(sub.get(), recheck)
            except TimeoutError:
                continue
            except (SubscriberOverflow, BusBackendError) as exc:
                raise HubError(ErrorCode.UNAVAILABLE, "Signal stream interrupted; resubscribe") from exc
            if isinstance(raw, Resync):
                continue
            body = json.loads(raw)
            if body.get("kind") == _END:
                return
            yield body
