"""Ideas (feature requests): submitted by customers or staff (from a case), voted, assessed, answered.

- Every idea of a tenant is public: customers and anonymous readers (`X-Hub-Tenant`) read title,
  body, status, the public status note and the vote count. `caseIds` are staff-only (a customer sees
  only the ids of cases they can read); the assessment (effort, impact, notes) is staff-only.
- Status: `NEW` on submission; staff set `UNDER_REVIEW PLANNED IN_PROGRESS SHIPPED DECLINED` with a
  public note. Each change notifies the submitter, every voter, and the customers of linked cases.
- Votes: one per user (unique on idea and user); voting again, or withdrawing a vote never cast,
  changes nothing (idempotent, no event). `SHIPPED`/`DECLINED` ideas take no votes (`INVALID`).
- Discussion: the idea's comment thread (`commentAdd(subjectId: idea_…)`): customers comment
  publicly, staff also `INTERNAL`. Events on `idea:<id>`: see `docs/events.md`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hub import ratelimit
from hub.auth import STAFF_ROLES
from hub.errors import forbidden, invalid, not_found
from hub.events import Event, Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, cases, notifications, public, threads, users
from resolvers.context import Context
from resolvers.forum import core, indexing
from resolvers.loaders import Loader
from resolvers.pagination import Page, paginate

_ORDER = [("votes", DESCENDING), ("_id", DESCENDING)]
register_indexes(
    "ideas",
    IndexModel([("tenant", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("status", ASCENDING), *_ORDER]),
    IndexModel([("tenant", ASCENDING), ("terms", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("caseIds", ASCENDING)]),
)
register_indexes("idea_votes", IndexModel([("tenant", ASCENDING), ("ideaId", ASCENDING), ("uid", ASCENDING)],
                                          unique=True))

STATUSES = ("NEW", "UNDER_REVIEW", "PLANNED", "IN_PROGRESS", "SHIPPED", "DECLINED")
SETTABLE = STATUSES[1:]
CLOSED = ("SHIPPED", "DECLINED")
MAX_NOTE, MAX_NOTES = 2000, 5000
SUBMIT_PER_USER = 10
"""Ideas per user per minute."""
_IDEA_ID = re.compile(r"^idea_[0-9a-f]{24}$")


def stream(idea_id: str) -> str:
    return f"idea:{idea_id}"


# -- reads (`ctx` is a view from `resolvers.public.view`) ------------------------------------------


async def get(ctx: Context, idea_id: str) -> Doc | None:
    """An idea of the caller's (or the hinted) tenant; every idea is public."""
    if not isinstance(idea_id, str) or not _IDEA_ID.match(idea_id):
        return None
    return await ctx.loader("ideas").load(idea_id)


async def list_ideas(ctx: Context, filter: dict[str, Any], first: int | None, after: str | None) -> Page:
    """Ideas, most voted first, narrowed by status and words of the text."""
    query: dict[str, Any] = {}
    if filter.get("status"):
        query["status"] = {"$in": list(filter["status"])}
    if filter.get("text"):
        words = core.significant(core.terms(core.text(filter["text"], "text", core.MAX_TEXT_FILTER)))
        if words:
            query["terms"] = {"$all": words}
    return await paginate(ctx.db["ideas"], query, sort_key="votes", first=first, after=after)


async def viewer_voted(ctx: Context, idea_id: str) -> bool:
    """Whether the caller voted for the idea (batched over a page of ideas)."""
    if public.is_anonymous(ctx):
        return False
    me = ctx.me

    def make() -> Loader[str, Doc]:
        async def batch(ids: Sequence[str]) -> dict[str, Doc]:
            found = await ctx.db["idea_votes"].find({"ideaId": {"$in": list(ids)}, "uid": me.sub})
            return {d["ideaId"]: d for d in found}

        return Loader(batch)

    loader: Loader[str, Doc] = ctx.memo("idea_votes:viewer", make)
    return await loader.load(idea_id) is not None


async def case_ids(ctx: Context, idea: Doc) -> list[str]:
    """Linked cases: all for staff, those a customer can read for customers, none for anonymous."""
    ids = list(idea.get("caseIds") or [])
    if public.is_anonymous(ctx):
        return []
    if ctx.me.is_staff:
        return ids
    return [i for i in ids if await cases.get(ctx, i) is not None]


def assessment(ctx: Context, idea: Doc) -> Doc | None:
    """Viability assessment: staff only."""
    if public.is_anonymous(ctx) or not ctx.me.is_staff:
        return None
    found: Doc | None = idea.get("assessment")
    return found


# -- writes --------------------------------------------------------------------------------------


def _idea_id(value: Any) -> str:
    if not isinstance(value, str) or not _IDEA_ID.match(value):
        raise invalid("Not an idea id", "ideaId")
    return value


async def _load(ctx: Context, idea_id: Any) -> Doc:
    """The current idea inside a write (`NOT_FOUND` when absent from the tenant)."""
    idea = await ctx.db["ideas"].find_one({"_id": _idea_id(idea_id)})
    if idea is None:
        raise not_found("Idea", "ideaId")
    return idea


async def _linkable_case(ctx: Context, case_id: Any) -> Doc:
    """A case the caller may link: staff any, a customer one they opened."""
    doc = await cases.get(ctx, cases.case_id_of(case_id))
    if doc is None:
        raise not_found("Case", "caseId")
    if not cases.can_edit(ctx, doc):
        raise forbidden("Only staff or the case's customer may link it to an idea", "caseId")
    return doc


async def submit(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A new `NEW` idea; with `caseId` it is linked to that case."""
    me = ctx.me
    title = core.text(data.get("title"), "title", core.MAX_TITLE)
    body = core.text(data.get("body"), "body", core.MAX_BODY, strip=False)
    case = await _linkable_case(ctx, data["case_id"]) if data.get("case_id") else None
    await ratelimit.hit(ctx.hub, f"ideas:submit:{me.tenant}:{me.sub}", SUBMIT_PER_USER, 60)
    await users.remember(ctx)
    at = core.now()
    idea: Doc = {
        "_id": new_id("idea"), "title": title, "body": body, "status": "NEW", "statusNote": "",
        "submitterId": me.sub, "caseIds": [case["_id"]] if case else [], "votes": 0, "assessment": None,
        "createdAt": at, "updatedAt": at, "statusChangedAt": None, "terms": core.terms_of(title, body, []),
        "version": 1,
    }

    async def write() -> None:
        await ctx.db["ideas"].insert(idea)
        await activity.emit(ctx, stream(idea["_id"]), "idea.submitted", f"{me.name} submitted the idea “{title}”",
                            {"ideaId": idea["_id"], "title": title}, visibility=Visibility.PUBLIC)
        if case is not None:
            await _emit_linked(ctx, idea, case["_id"])
        await indexing.idea(ctx, idea)

    await ctx.events.write(write)
    ctx.loader("ideas").prime(idea["_id"], idea)
    return {"idea": idea}


async def _emit_linked(ctx: Context, idea: Doc, case_id: str) -> None:
    """`idea.case_linked`: INTERNAL on the idea (case ids are private), PUBLIC on the case."""
    me = ctx.me
    await activity.emit(ctx, stream(idea["_id"]), "idea.case_linked", f"{me.name} linked a case to the idea",
                        {"ideaId": idea["_id"], "caseId": case_id})
    await activity.emit(ctx, cases.stream(case_id), "idea.case_linked",
                        f"{me.name} linked the case to the idea “{idea['title']}”",
                        {"ideaId": idea["_id"], "title": idea["title"]}, visibility=Visibility.PUBLIC)


async def _vote(ctx: Context, data: dict[str, Any], on: bool) -> dict[str, Any]:
    me = ctx.me
    idea_id = _idea_id(data.get("idea_id"))
    await users.remember(ctx)

    async def write() -> Doc:
        idea = await _load(ctx, idea_id)
        if idea["status"] in CLOSED:
            raise invalid(f"This idea is {idea['status']}: voting is closed", "ideaId")
        votes = ctx.db["idea_votes"]
        voted = await votes.find_one({"ideaId": idea_id, "uid": me.sub}) is not None
        if voted == on:
            return idea  # already so: nothing changes, nothing to tell
        if on:
            await votes.insert({"_id": new_id("ivote"), "ideaId": idea_id, "uid": me.sub, "createdAt": core.now()})
        else:
            await votes.delete_one({"ideaId": idea_id, "uid": me.sub})
        updated = await ctx.db["ideas"].find_one_and_update(
            {"_id": idea_id}, {"$inc": {"votes": 1 if on else -1}})
        assert updated is not None
        kind, verb = ("idea.voted", "voted for") if on else ("idea.unvoted", "withdrew their vote for")
        await activity.emit(ctx, stream(idea_id), kind, f"{me.name} {verb} “{idea['title']}”",
                            {"ideaId": idea_id, "votes": updated["votes"]})
        return updated

    try:
        idea = await ctx.events.write(write)
    except DuplicateKeyError:  # the same user's concurrent vote won: the outcome is the same
        idea = await _load(ctx, idea_id)
    ctx.loader("ideas").clear(idea_id)
    return {"idea": idea}


async def vote(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """One vote per user; voting again changes nothing. Closed ideas refuse votes (`INVALID`)."""
    return await _vote(ctx, data, True)


async def unvote(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Withdraw the caller's vote (nothing happens if there is none)."""
    return await _vote(ctx, data, False)


async def set_status(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Staff move an idea to a status with a public note; everybody concerned is notified."""
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff set the status of ideas", "status")
    status = data.get("status")
    if status not in SETTABLE:
        raise invalid(f"status must be one of {', '.join(SETTABLE)}", "status")
    note = core.text(data.get("note"), "note", MAX_NOTE, required=False)
    idea_id = _idea_id(data.get("idea_id"))
    await users.remember(ctx)

    async def write() -> Doc:
        idea = await _load(ctx, idea_id)
        if idea["status"] == status and idea.get("statusNote", "") == note:
            return idea
        at = core.now()
        updated = await ctx.db["ideas"].find_one_and_update(
            {"_id": idea_id},
            {"$set": {"status": status, "statusNote": note, "statusChangedAt": at, "statusChangedBy": me.sub,
                      "updatedAt": at}, "$inc": {"version": 1}},
        )
        assert updated is not None
        await activity.emit(
            ctx, stream(idea_id), "idea.status_changed",
            f"“{idea['title']}” is now {status.replace('_', ' ').lower()}" + (f": {note}" if note else ""),
            {"ideaId": idea_id, "from": idea["status"], "to": status, "note": note}, visibility=Visibility.PUBLIC,
        )
        return updated

    idea = await ctx.events.write(write)
    ctx.loader("ideas").clear(idea_id)
    return {"idea": idea}


async def link_case(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Link a case that raised the idea (staff any case; customers a case they opened)."""
    idea_id = _idea_id(data.get("idea_id"))
    case = await _linkable_case(ctx, data.get("case_id"))
    await users.remember(ctx)

    async def write() -> Doc:
        idea = await _load(ctx, idea_id)
        if case["_id"] in idea.get("caseIds", []):
            return idea
        updated = await ctx.db["ideas"].find_one_and_update(
            {"_id": idea_id}, {"$addToSet": {"caseIds": case["_id"]}, "$inc": {"version": 1}})
        assert updated is not None
        await _emit_linked(ctx, updated, case["_id"])
        return updated

    idea = await ctx.events.write(write)
    ctx.loader("ideas").clear(idea_id)
    return {"idea": idea}


def _level(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise invalid(f"{field} must be between 1 and 5", field)
    return value


async def assess(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Staff record the viability assessment (effort and impact 1 to 5, notes): internal only."""
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff assess ideas", "ideaId")
    idea_id = _idea_id(data.get("idea_id"))
    assessment = {"effort": _level(data.get("effort"), "effort"), "impact": _level(data.get("impact"), "impact"),
                  "notes": core.text(data.get("notes"), "notes", MAX_NOTES, required=False),
                  "assessedBy": me.sub, "assessedAt": core.now()}
    await users.remember(ctx)

    async def write() -> Doc:
        idea = await _load(ctx, idea_id)
        updated = await ctx.db["ideas"].find_one_and_update(
            {"_id": idea_id}, {"$set": {"assessment": assessment}, "$inc": {"version": 1}})
        assert updated is not None
        await activity.emit(ctx, stream(idea_id), "idea.assessed", f"{me.name} assessed “{idea['title']}”",
                            {"ideaId": idea_id, "effort": assessment["effort"], "impact": assessment["impact"]})
        return updated

    idea = await ctx.events.write(write)
    ctx.loader("ideas").clear(idea_id)
    return {"idea": idea}


# -- registrations -------------------------------------------------------------------------------


async def _readable(ctx: Context, idea_id: str) -> bool:
    return await get(ctx, idea_id) is not None


async def _recipients(ctx: Context, idea_id: str, event: Event) -> set[str]:
    """Status changes: the submitter, every voter, the customers of linked cases. Mentions always.

    INTERNAL events (votes, links, assessments, internal notes) reach mentioned staff only.
    """
    uids = set(notifications.mentioned(event))
    if event.kind == "idea.status_changed":
        idea = await ctx.db["ideas"].find_one({"_id": idea_id}, projection={"submitterId": 1, "caseIds": 1})
        if idea is None:
            return set()
        uids.add(idea["submitterId"])
        uids |= {v["uid"] for v in await ctx.db["idea_votes"].find({"ideaId": idea_id}, projection={"uid": 1})}
        linked = await ctx.db["cases"].find({"_id": {"$in": list(idea.get("caseIds") or [])}},
                                            projection={"customerId": 1, "participants": 1})
        for case in linked:
            people = {case.get("customerId"), *(case.get("participants") or [])} - {None}
            uids |= await notifications.customer_side(ctx, [p for p in people if p], people)
    if event.visibility is Visibility.INTERNAL:
        found = await ctx.db["users"].find({"uid": {"$in": sorted(uids)}}, projection={"uid": 1, "roles": 1})
        uids = {d["uid"] for d in found if set(d.get("roles") or []) & STAFF_ROLES}
    return uids


activity.register_stream("idea", _readable)
threads.register_subject("idea", _readable, _readable, stream)
notifications.register_recipients("idea", _recipients)
