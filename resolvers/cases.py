"""Cases: where customers, agents, experts and supervisors work an issue together."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, users
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "cases",
    IndexModel([("tenant", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("customerId", ASCENDING), ("updatedAt", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("participants", ASCENDING), ("updatedAt", DESCENDING)]),
)

CHANNELS = ("FORUM", "EMAIL", "CHAT", "PHONE", "WEB", "SELF_SERVICE")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
MAX_SUBJECT = 300
MAX_DESCRIPTION = 100_000


def stream(case_id: str) -> str:
    return f"case:{case_id}"


def can_read(ctx: Context, case: Doc) -> bool:
    me = ctx.me
    if me.is_staff:
        return True
    return case.get("customerId") == me.sub or me.sub in case.get("participants", [])


async def get(ctx: Context, case_id: str) -> Doc | None:
    """The case if the caller may read it, else `None` (existence never leaks)."""
    case = await ctx.loader("cases").load(case_id)
    return case if case is not None and can_read(ctx, case) else None


def _text(value: str | None, field: str, limit: int, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise invalid(f"{field} must not be empty", field)
    if len(text) > limit:
        raise invalid(f"{field} is longer than {limit} characters", field)
    return text


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    await users.remember(ctx)
    subject = _text(data.get("subject"), "subject", MAX_SUBJECT, required=True)
    description = _text(data.get("description"), "description", MAX_DESCRIPTION)
    priority = data.get("priority") or "NORMAL"
    if priority not in PRIORITIES:
        raise invalid(f"priority must be one of {', '.join(PRIORITIES)}", "priority")
    channel = data.get("channel") or "WEB"
    if channel not in CHANNELS:
        raise invalid(f"channel must be one of {', '.join(CHANNELS)}", "channel")
    customer_id = data.get("customer_id")
    if customer_id and not me.is_staff:
        raise forbidden("Only staff may open a case for another customer", "customerId")
    customer_id = customer_id or me.sub
    now = datetime.now(UTC)
    case: Doc = {
        "_id": new_id("case"), "subject": subject, "description": description,
        "status": "NEW", "priority": priority, "channel": channel,
        "tags": sorted({t.strip().lower() for t in data.get("tags") or [] if t.strip()}),
        "skills": sorted({s.strip().lower() for s in data.get("skills") or [] if s.strip()}),
        "customerId": customer_id, "assigneeId": None, "participants": [customer_id],
        "followers": [me.sub], "version": 1, "createdAt": now, "updatedAt": now,
        "createdBy": me.sub,
    }

    async def write() -> None:
        await ctx.db["cases"].insert(case)
        await activity.emit(
            ctx, stream(case["_id"]), "case.created", f"{me.name} opened “{subject}”",
            {"subject": subject, "priority": priority, "channel": channel},
            visibility=Visibility.PUBLIC,
        )

    await ctx.events.write(write)
    ctx.loader("cases").prime(case["_id"], case)
    return {"case": case}


async def list_cases(ctx: Context, filter: dict[str, Any], first: int | None, after: str | None) -> Page:
    me = ctx.me
    query: dict[str, Any] = {}
    if not me.is_staff:
        query["participants"] = me.sub
    if filter.get("status"):
        query["status"] = {"$in": list(filter["status"])}
    return await paginate(ctx.db["cases"], query, sort_key="updatedAt", first=first, after=after)


async def _readable(ctx: Context, case_id: str) -> bool:
    return await get(ctx, case_id) is not None


activity.register_stream("case", _readable)


TRANSITIONS: dict[str, set[str]] = {
    "NEW": {"OPEN", "PENDING", "SOLVED", "CLOSED"},
    "OPEN": {"PENDING", "SOLVED", "CLOSED"},
    "PENDING": {"OPEN", "SOLVED", "CLOSED"},
    "SOLVED": {"OPEN", "CLOSED"},
    "CLOSED": {"OPEN"},
}


async def set_status(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    case_id, status = data["case_id"], data["status"]
    expected = data.get("expected_version")

    async def write() -> Doc:
        case = await ctx.db["cases"].find_one({"_id": case_id})
        if case is None or not can_read(ctx, case):
            raise not_found("Case", "caseId")
        if not me.is_staff and status not in ("SOLVED", "CLOSED", "OPEN"):
            raise forbidden("Customers may only solve, close or reopen their case", "status")
        if status == case["status"] or status not in TRANSITIONS[case["status"]]:
            raise invalid(f"A {case['status']} case cannot become {status}", "status")
        if expected is not None and expected != case["version"]:
            raise conflict(f"The case changed (version {case['version']}); reload and retry", "expectedVersion")
        updated = await ctx.db["cases"].find_one_and_update(
            {"_id": case_id, "version": case["version"]},
            {"$set": {"status": status, "updatedAt": datetime.now(UTC)}, "$inc": {"version": 1}},
        )
        if updated is None:
            raise conflict("The case changed meanwhile; reload and retry", "expectedVersion")
        await activity.emit(
            ctx, stream(case_id), "case.status_changed",
            f"{me.name} changed the status from {case['status']} to {status}",
            {"from": case["status"], "to": status}, visibility=Visibility.PUBLIC,
        )
        return updated

    return {"case": await ctx.events.write(write)}
