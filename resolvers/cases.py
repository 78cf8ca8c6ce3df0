"""Cases: where customers, agents, experts and supervisors work an issue together.

Who may do what (see `docs/events.md` for the events each mutation emits):
- Staff (agent, expert, supervisor, editor, admin) read and write every case of their tenant;
  experts work swarmed cases, so they read the tenant's cases like agents do.
- A customer reads the cases they opened (`customerId`) or were added to (`participants`).
  The opener may edit subject/description and solve, close or reopen; every reader may follow.
  Customers never assign, add participants, or set priority, skills, tags or resolution fields,
  and read internal fields (tags, skills, symptom, cause, SLA, staff followers/participants)
  as empty.
- Writes to a case the caller cannot read answer `NOT_FOUND` (existence never leaks).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, users
from resolvers.context import Context
from resolvers.pagination import Page, paginate

_ORDER = [("updatedAt", DESCENDING), ("_id", DESCENDING)]
register_indexes(
    "cases",
    IndexModel([("tenant", ASCENDING), *_ORDER]),
    *(IndexModel([("tenant", ASCENDING), (path, ASCENDING), *_ORDER])
      for path in ("status", "assigneeId", "customerId", "participants", "tags", "skills")),
)

CHANNELS = ("FORUM", "EMAIL", "CHAT", "PHONE", "WEB", "SELF_SERVICE")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
SLA_HOURS = {"URGENT": 4, "HIGH": 8, "NORMAL": 24, "LOW": 72}
TRANSITIONS: dict[str, set[str]] = {
    "NEW": {"OPEN", "PENDING", "SOLVED", "CLOSED"},
    "OPEN": {"PENDING", "SOLVED", "CLOSED"},
    "PENDING": {"OPEN", "SOLVED", "CLOSED"},
    "SOLVED": {"OPEN", "CLOSED"},
    "CLOSED": {"OPEN"},
}
MAX_SUBJECT = 300
MAX_DESCRIPTION = 100_000
MAX_NOTE = 20_000  # symptom, cause, resolution
MAX_LABELS, MAX_LABEL = 20, 50  # tags and skills
MAX_SEARCH = 200
# Fields a customer reads and whose changes are PUBLIC; every other editable field is internal.
PUBLIC_FIELDS = ("subject", "description", "priority", "resolution")
TEXT_LIMITS = {"subject": MAX_SUBJECT, "description": MAX_DESCRIPTION,
               "symptom": MAX_NOTE, "cause": MAX_NOTE, "resolution": MAX_NOTE}
CUSTOMER_EDITABLE = ("subject", "description")
_CASE_ID = re.compile(r"^case_[0-9a-f]{24}$")


def stream(case_id: str) -> str:
    return f"case:{case_id}"


def can_read(ctx: Context, case: Doc) -> bool:
    me = ctx.me
    return me.is_staff or case.get("customerId") == me.sub or me.sub in case.get("participants", [])


def can_edit(ctx: Context, case: Doc) -> bool:
    """Staff edit any case; a customer only the one they opened (subject, description, status)."""
    return ctx.me.is_staff or case.get("customerId") == ctx.me.sub


async def get(ctx: Context, case_id: str) -> Doc | None:
    """The case if the caller may read it, else `None` (existence never leaks)."""
    case = await ctx.loader("cases").load(case_id)
    return case if case is not None and can_read(ctx, case) else None


def sla_due(created: datetime, priority: str) -> datetime:
    """When the case must be solved: creation + URGENT 4h, HIGH 8h, NORMAL 24h, LOW 72h."""
    return created + timedelta(hours=SLA_HOURS[priority])


def sla_breached(case: Doc, now: datetime | None = None) -> bool:
    """Solved after its due time, or still unsolved past it."""
    due: datetime = case["slaDueAt"]
    done = case.get("solvedAt")
    return (done or now or datetime.now(UTC)) > due


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # what the store keeps


def _text(value: Any, field: str, limit: int, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise invalid(f"{field} must not be empty", field)
    if len(text) > limit:
        raise invalid(f"{field} is longer than {limit} characters", field)
    return text


def _labels(values: Any, field: str) -> list[str]:
    labels = sorted({v.strip().lower() for v in values or [] if v.strip()})
    if len(labels) > MAX_LABELS:
        raise invalid(f"at most {MAX_LABELS} {field}", field)
    if any(len(v) > MAX_LABEL for v in labels):
        raise invalid(f"each of {field} must be at most {MAX_LABEL} characters", field)
    return labels


def _choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise invalid(f"{field} must be one of {', '.join(options)}", field)
    return str(value)


def case_id_of(value: Any, field: str = "caseId") -> str:
    """A well-formed case id, else `INVALID` (a malformed id cannot exist in any tenant)."""
    if not isinstance(value, str) or not _CASE_ID.match(value):
        raise invalid("Not a case id", field)
    return value


async def known_user(ctx: Context, uid: Any, field: str) -> Doc:
    """A user of the caller's tenant (profiles are remembered from tokens), else `INVALID`."""
    doc = await users.get(ctx, uid) if isinstance(uid, str) and uid else None
    if doc is None:
        raise invalid("No such user in this tenant", field)
    return doc


def _staff_only(ctx: Context, data: dict[str, Any], fields: tuple[str, ...]) -> None:
    if ctx.me.is_staff:
        return
    for name in fields:
        if data.get(name) is not None:
            raise forbidden(f"Only staff may set {_camel(name)}", _camel(name))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Open a case: customers open their own, staff may open one for a known `customerId`."""
    me = ctx.me
    await users.remember(ctx)
    _staff_only(ctx, data, ("customer_id", "priority", "skills", "tags"))
    subject = _text(data.get("subject"), "subject", MAX_SUBJECT, required=True)
    description = _text(data.get("description"), "description", MAX_DESCRIPTION)
    priority = _choice(data.get("priority") or "NORMAL", "priority", PRIORITIES)
    channel = _choice(data.get("channel") or "WEB", "channel", CHANNELS)
    tags, skills = _labels(data.get("tags"), "tags"), _labels(data.get("skills"), "skills")
    customer_id = data.get("customer_id") or me.sub
    if customer_id != me.sub:
        await known_user(ctx, customer_id, "customerId")
    now = _now()
    case: Doc = {
        "_id": new_id("case"), "subject": subject, "description": description,
        "status": "NEW", "priority": priority, "channel": channel, "tags": tags, "skills": skills,
        "customerId": customer_id, "assigneeId": None, "participants": [customer_id],
        "followers": sorted({me.sub, customer_id}), "version": 1, "createdAt": now, "updatedAt": now,
        "solvedAt": None, "slaDueAt": sla_due(now, priority), "symptom": "", "cause": "",
        "resolution": "", "createdBy": me.sub,
    }

    async def write() -> None:
        await ctx.db["cases"].insert(case)
        await activity.emit(
            ctx, stream(case["_id"]), "case.created", f"{me.name} opened “{subject}”",
            {"subject": subject, "priority": priority, "channel": channel, "customerId": customer_id},
            visibility=Visibility.PUBLIC,
        )

    await ctx.events.write(write)
    ctx.loader("cases").prime(case["_id"], case)
    return {"case": case}


async def _load(ctx: Context, case_id: str, expected: int | None = None) -> Doc:
    """The case for a write (inside the transaction); `NOT_FOUND` unless the caller reads it."""
    case = await ctx.db["cases"].find_one({"_id": case_id})
    if case is None or not can_read(ctx, case):
        raise not_found("Case", "caseId")
    if expected is not None and expected != case["version"]:
        raise conflict(f"The case changed (now version {case['version']}); reload and retry", "expectedVersion")
    return case


async def _save(ctx: Context, case: Doc, changes: Doc, **ops: Any) -> Doc:
    """Apply `changes` only if nobody wrote since `case` was read; bumps version and updatedAt."""
    update = {"$set": {**changes, "updatedAt": _now()}, "$inc": {"version": 1}, **ops}
    updated = await ctx.db["cases"].find_one_and_update({"_id": case["_id"], "version": case["version"]}, update)
    if updated is None:
        raise conflict("The case changed meanwhile; reload and retry", "expectedVersion")
    ctx.loader("cases").clear(case["_id"])
    return updated


async def update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Change any of subject, description, priority, tags, skills, symptom, cause, resolution."""
    me = ctx.me
    await users.remember(ctx)
    case_id = case_id_of(data.get("case_id"))
    _staff_only(ctx, data, ("priority", "skills", "tags", "symptom", "cause", "resolution"))
    wanted: Doc = {}
    for name, limit in TEXT_LIMITS.items():
        if data.get(name) is not None:
            wanted[name] = _text(data[name], name, limit, required=name == "subject")
    if data.get("priority") is not None:
        wanted["priority"] = _choice(data["priority"], "priority", PRIORITIES)
    for name in ("tags", "skills"):
        if data.get(name) is not None:
            wanted[name] = _labels(data[name], name)

    async def write() -> Doc:
        case = await _load(ctx, case_id, data.get("expected_version"))
        if not can_edit(ctx, case):
            raise forbidden("Only staff or the case's customer may edit it", "caseId")
        changes = {k: v for k, v in wanted.items() if case.get(k) != v}
        if not changes:
            return case
        if "priority" in changes:
            changes["slaDueAt"] = sla_due(case["createdAt"], changes["priority"])
        updated = await _save(ctx, case, changes)
        public = [k for k in PUBLIC_FIELDS if k in changes]
        shown = public or [k for k in wanted if k in changes]
        await activity.emit(
            ctx, stream(case_id), "case.updated", f"{me.name} updated {', '.join(shown)}",
            {"fields": shown, **{k: changes[k] for k in shown if k in ("subject", "priority", "tags", "skills")}},
            visibility=Visibility.PUBLIC if public else Visibility.INTERNAL,
        )
        return updated

    return {"case": await ctx.events.write(write)}


async def assign(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Assign to a staff member of the tenant (who then follows the case), or unassign with null."""
    me = ctx.me
    await users.remember(ctx)
    case_id = case_id_of(data.get("case_id"))
    assignee_id = data.get("assignee_id") or None
    assignee = await known_user(ctx, assignee_id, "assigneeId") if assignee_id else None
    if assignee is not None and not is_staff_user(assignee):
        raise invalid("Cases are assigned to staff only", "assigneeId")

    async def write() -> Doc:
        case = await _load(ctx, case_id, data.get("expected_version"))
        if not me.is_staff:
            raise forbidden("Only staff may assign cases", "assigneeId")
        if case.get("assigneeId") == assignee_id:
            return case
        ops = {"$addToSet": {"followers": assignee_id}} if assignee_id else {}
        updated = await _save(ctx, case, {"assigneeId": assignee_id}, **ops)
        who = assignee["name"] if assignee else "nobody"
        await activity.emit(
            ctx, stream(case_id), "case.assigned", f"{me.name} assigned the case to {who}",
            {"from": case.get("assigneeId"), "to": assignee_id},
        )
        return updated

    return {"case": await ctx.events.write(write)}


async def set_status(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Move along `TRANSITIONS`; customers may only solve, close or reopen the case they opened."""
    me = ctx.me
    case_id = case_id_of(data.get("case_id"))
    status = data.get("status")

    async def write() -> Doc:
        case = await _load(ctx, case_id, data.get("expected_version"))
        current = case["status"]
        if not can_edit(ctx, case):
            raise forbidden("Only staff or the case's customer may change its status", "status")
        if not me.is_staff and not (status in ("SOLVED", "CLOSED") or current in ("SOLVED", "CLOSED")):
            raise forbidden("Customers may only solve, close or reopen their case", "status")
        if status not in TRANSITIONS.get(current, set()):
            raise invalid(f"A {current} case cannot become {status}", "status")
        changes: Doc = {"status": status}
        if status == "SOLVED" or (status == "CLOSED" and not case.get("solvedAt")):
            changes["solvedAt"] = _now()
        elif status == "OPEN":
            changes["solvedAt"] = None
        updated = await _save(ctx, case, changes)
        await activity.emit(
            ctx, stream(case_id), "case.status_changed",
            f"{me.name} changed the status from {current} to {status}",
            {"from": current, "to": status}, visibility=Visibility.PUBLIC,
        )
        return updated

    return {"case": await ctx.events.write(write)}


async def add_participant(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Add a known user to the case (staff only); customer participants can then read it."""
    me = ctx.me
    await users.remember(ctx)
    case_id = case_id_of(data.get("case_id"))
    person = await known_user(ctx, data.get("user_id"), "userId")

    async def write() -> Doc:
        case = await _load(ctx, case_id, data.get("expected_version"))
        if not me.is_staff:
            raise forbidden("Only staff may add participants", "userId")
        if person["uid"] in case.get("participants", []):
            return case
        updated = await _save(ctx, case, {}, **{"$addToSet": {"participants": person["uid"]}})
        public = not is_staff_user(person)
        await activity.emit(
            ctx, stream(case_id), "case.participant_added", f"{me.name} added {person['name']} to the case",
            {"userId": person["uid"]}, visibility=Visibility.PUBLIC if public else Visibility.INTERNAL,
        )
        return updated

    return {"case": await ctx.events.write(write)}


def is_staff_user(doc: Doc) -> bool:
    """Whether a remembered user profile carries a staff role."""
    return bool(set(doc.get("roles") or []) & STAFF_ROLES)


async def follow(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    return await _follow(ctx, data, True)


async def unfollow(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    return await _follow(ctx, data, False)


async def _follow(ctx: Context, data: dict[str, Any], on: bool) -> dict[str, Any]:
    """Follow or unfollow a case the caller reads. Following is not an edit of the case: it
    keeps `version` and `updatedAt` (a follower must not make a pending edit CONFLICT)."""
    me = ctx.me
    await users.remember(ctx)
    case_id = case_id_of(data.get("case_id"))

    async def write() -> Doc:
        case = await _load(ctx, case_id)
        if (me.sub in case.get("followers", [])) == on:
            return case
        op = "$addToSet" if on else "$pull"
        updated = await ctx.db["cases"].find_one_and_update({"_id": case_id}, {op: {"followers": me.sub}})
        assert updated is not None
        ctx.loader("cases").clear(case_id)
        kind, verb = ("case.followed", "follows") if on else ("case.unfollowed", "stopped following")
        await activity.emit(ctx, stream(case_id), kind, f"{me.name} {verb} the case", {"userId": me.sub})
        return updated

    return {"case": await ctx.events.write(write)}


def _filter(ctx: Context, f: dict[str, Any]) -> dict[str, Any]:
    me = ctx.me
    query: dict[str, Any] = {} if me.is_staff else {"participants": me.sub}
    if f.get("status"):
        query["status"] = {"$in": list(f["status"])}
    if f.get("unassigned"):
        if f.get("assignee"):
            raise invalid("Use either assignee or unassigned", "unassigned")
        query["assigneeId"] = None
    elif f.get("assignee"):
        query["assigneeId"] = me.sub if f["assignee"] == "me" else f["assignee"]
    if f.get("customer"):
        query["customerId"] = me.sub if f["customer"] == "me" else f["customer"]
    for name, path in (("tag", "tags"), ("skill", "skills")):
        if f.get(name):
            if not me.is_staff:
                raise forbidden(f"Only staff may filter by {name}", name)
            query[path] = str(f[name]).strip().lower()
    if f.get("text"):
        text = _text(f["text"], "text", MAX_SEARCH)
        query["subject"] = {"$regex": re.escape(text), "$options": "i"}
    if f.get("updated_since"):
        # `$gt` one millisecond earlier == `$gte` (stored times have ms precision); SecantusDB
        # answers `$gte` on a descending index key as if it were `$gt`.
        query["updatedAt"] = {"$gt": f["updated_since"] - timedelta(milliseconds=1)}
    return query


async def list_cases(ctx: Context, filter: dict[str, Any], first: int | None, after: str | None) -> Page:
    """The cases the caller reads, most recently updated first, narrowed by `filter`."""
    query = _filter(ctx, filter)
    return await paginate(ctx.db["cases"], query, sort_key="updatedAt", first=first, after=after)


async def people(ctx: Context, case: Doc, key: str) -> list[Doc]:
    """Followers or participants as user docs (one batched load); customers see no staff."""
    uids = list(case.get(key) or [])
    docs = [d or users.placeholder(u) for u, d in zip(uids, await users.loader(ctx).load_many(uids), strict=True)]
    return docs if ctx.me.is_staff else [d for d in docs if not is_staff_user(d)]


def internal(ctx: Context, case: Doc, key: str, empty: Any = None) -> Any:
    """An internal field's value for staff, `empty` for customers."""
    return case.get(key, empty) if ctx.me.is_staff else empty


async def _readable(ctx: Context, case_id: str) -> bool:
    return await get(ctx, case_id) is not None


activity.register_stream("case", _readable)
