"""Self-service sessions: what a customer searched, read and rated before (maybe) asking for help.

- Customers only, with a token (`selfServiceStart`); no anonymous sessions: escalating opens a
  case its customer must later read, which needs an identity (integrators mint a customer token
  for guests). Staff get `FORBIDDEN` (they open cases for customers with `caseCreate`).
- A session is `ACTIVE` until the customer `RESOLVED` it (`selfServiceResolve`, "this solved
  it") or `ESCALATED` it. Only `ACTIVE` sessions take records. `selfServiceEscalate` works once,
  from `ACTIVE` or `RESOLVED` (a customer may change their mind); after that it is `CONFLICT`.
- `selfServiceRecord`: `SEARCH` (query text), `VIEW` (counts an article view), `HELPFUL` /
  `NOT_HELPFUL` (also the customer's `articleRate` vote). Articles must be readable by the
  customer (published), else `NOT_FOUND`.
- Escalation opens a `SELF_SERVICE` case for the customer and, in the same transaction, appends
  one PUBLIC event per recorded step right after `case.created` (`selfservice.searched`,
  `selfservice.viewed`, `selfservice.rated`) and stores the session summary on the case
  (`selfService`), so the agent picks up where the customer left off.
- Events of the session itself go to `selfservice:<id>` (the customer and staff read it).
"""

from __future__ import annotations

import json
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, cases, users
from resolvers.articles import core, ratings
from resolvers.context import Context

register_indexes(
    "selfservice_sessions",
    IndexModel([("tenant", ASCENDING), ("customerId", ASCENDING), ("createdAt", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("createdAt", ASCENDING)]),
)

KINDS = ("SEARCH", "VIEW", "HELPFUL", "NOT_HELPFUL")
EVENT_KIND = {"SEARCH": "selfservice.searched", "VIEW": "selfservice.viewed",
              "HELPFUL": "selfservice.rated", "NOT_HELPFUL": "selfservice.rated"}
MAX_STEPS = 200
MAX_QUERY = 500
MAX_CHANNEL = 50
MAX_CONTEXT = 4000
"""Characters of the JSON `context` a widget may attach (page, product, locale…)."""


def stream(session_id: str) -> str:
    return f"selfservice:{session_id}"


def _customer(ctx: Context) -> None:
    if ctx.me.is_staff:
        raise forbidden("Self-service sessions are for customers; staff open cases with caseCreate")


def _mine(ctx: Context, session: Doc | None) -> bool:
    return session is not None and (ctx.me.is_staff or session["customerId"] == ctx.me.sub)


async def get(ctx: Context, session_id: str) -> Doc | None:
    """A session its customer or staff may read, else `None`."""
    session = await ctx.loader("selfservice_sessions").load(session_id)
    return session if _mine(ctx, session) else None


async def _load(ctx: Context, session_id: Any) -> Doc:
    session = await ctx.db["selfservice_sessions"].find_one({"_id": str(session_id)}) if session_id else None
    if session is None or session["customerId"] != ctx.me.sub:
        raise not_found("Self-service session", "sessionId")
    return session


def _context(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("context must be a JSON object", "context")
    if len(json.dumps(value, default=str)) > MAX_CONTEXT:
        raise invalid(f"context is larger than {MAX_CONTEXT} characters of JSON", "context")
    return value


async def start(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`selfServiceStart`: a new ACTIVE session of the calling customer."""
    me = ctx.me
    _customer(ctx)
    channel = (data.get("channel") or "WEB").strip().upper()
    if not channel or len(channel) > MAX_CHANNEL:
        raise invalid(f"channel must be 1 to {MAX_CHANNEL} characters", "channel")
    now = core.now()
    session: Doc = {
        "_id": new_id("sss"), "customerId": me.sub, "channel": channel, "context": _context(data.get("context")),
        "status": "ACTIVE", "steps": [], "stepCount": 0, "caseId": None, "createdAt": now, "updatedAt": now,
        "resolvedAt": None, "escalatedAt": None,
    }
    await users.remember(ctx)

    async def write() -> Doc:
        doc = await ctx.db["selfservice_sessions"].insert(session)
        await activity.emit(ctx, stream(session["_id"]), "selfservice.started", f"{me.name} started self-service",
                            {"sessionId": session["_id"], "channel": channel}, visibility=Visibility.PUBLIC)
        return doc

    return {"session": await ctx.events.write(write)}


def _step_input(data: dict[str, Any]) -> tuple[str, str | None, str | None]:
    kind = data.get("kind")
    if kind not in KINDS:
        raise invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    query, article_id = data.get("query"), data.get("article_id")
    if kind == "SEARCH":
        if article_id is not None:
            raise invalid("articleId goes with VIEW, HELPFUL and NOT_HELPFUL", "articleId")
        text = " ".join(str(query or "").split())
        if not text:
            raise invalid("A SEARCH needs its query", "query")
        if len(text) > MAX_QUERY:
            raise invalid(f"query is longer than {MAX_QUERY} characters", "query")
        return kind, text, None
    if query is not None:
        raise invalid("query goes with SEARCH only", "query")
    if not article_id:
        raise invalid(f"A {kind} needs its articleId", "articleId")
    return kind, None, str(article_id)


def describe(step: Doc) -> str:
    """One line of the session's story, as shown in summaries and events."""
    if step["kind"] == "SEARCH":
        return f"Searched for “{step['query']}”"
    if step["kind"] == "VIEW":
        return f"Read “{step['articleTitle']}”"
    verdict = "helpful" if step["kind"] == "HELPFUL" else "not helpful"
    return f"Found “{step['articleTitle']}” {verdict}"


def _step_data(session_id: str, step: Doc) -> dict[str, Any]:
    data: dict[str, Any] = {"sessionId": session_id, "step": step["n"], "at": step["at"].isoformat()}
    if step["kind"] == "SEARCH":
        data["query"] = step["query"]
    else:
        data |= {"articleId": step["articleId"], "title": step["articleTitle"]}
        if step["kind"] != "VIEW":
            data["helpful"] = step["kind"] == "HELPFUL"
    return data


async def record(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`selfServiceRecord`: append one step to an ACTIVE session of the caller."""
    _customer(ctx)
    kind, query, article_id = _step_input(data)
    await users.remember(ctx)

    async def write() -> Doc:
        session = await _load(ctx, data.get("session_id"))
        if session["status"] != "ACTIVE":
            raise conflict(f"The session is {session['status']}; start a new one", "sessionId")
        if session["stepCount"] >= MAX_STEPS:
            raise invalid(f"A session records at most {MAX_STEPS} steps", "sessionId")
        step: Doc = {"n": session["stepCount"] + 1, "kind": kind, "at": core.now()}
        if query is not None:
            step["query"] = query
        if article_id is not None:
            article = await core.load_for_write(ctx, article_id)
            step |= {"articleId": article["_id"], "articleTitle": article["title"]}
        updated = await ctx.db["selfservice_sessions"].find_one_and_update(
            {"_id": session["_id"], "status": "ACTIVE", "stepCount": session["stepCount"]},
            {"$push": {"steps": step}, "$inc": {"stepCount": 1}, "$set": {"updatedAt": step["at"]}},
        )
        if updated is None:
            raise conflict("The session changed meanwhile; retry", "sessionId")
        await activity.emit(ctx, stream(session["_id"]), EVENT_KIND[kind], describe(step),
                            _step_data(session["_id"], step), visibility=Visibility.PUBLIC)
        if kind == "VIEW":
            await ctx.db["articles"].update_one({"_id": step["articleId"]}, {"$inc": {"viewCount": 1}})
        elif kind in ("HELPFUL", "NOT_HELPFUL"):
            await ratings.rate(ctx, {"article_id": step["articleId"], "helpful": kind == "HELPFUL"})
        return updated

    session = await ctx.events.write(write)
    ctx.loader("selfservice_sessions").clear(session["_id"])
    return {"session": session}


async def resolve(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`selfServiceResolve`: the customer says self-service solved it (a confirmed deflection)."""
    me = ctx.me
    _customer(ctx)

    async def write() -> Doc:
        session = await _load(ctx, data.get("session_id"))
        now = core.now()
        updated = await ctx.db["selfservice_sessions"].find_one_and_update(
            {"_id": session["_id"], "status": "ACTIVE"},
            {"$set": {"status": "RESOLVED", "resolvedAt": now, "updatedAt": now}},
        )
        if updated is None:
            raise conflict(f"The session is {session['status']}", "sessionId")
        await activity.emit(ctx, stream(session["_id"]), "selfservice.resolved",
                            f"{me.name} solved it with self-service", {"sessionId": session["_id"]},
                            visibility=Visibility.PUBLIC)
        return updated

    return {"session": await ctx.events.write(write)}


def summary_of(session: Doc) -> Doc:
    """What the case keeps of the session (`Case.selfService`): the agent's starting point."""
    steps = session["steps"]
    return {
        "sessionId": session["_id"], "startedAt": session["createdAt"], "channel": session["channel"],
        "steps": len(steps), "searches": [s["query"] for s in steps if s["kind"] == "SEARCH"],
        "viewed": list(dict.fromkeys(s["articleId"] for s in steps if s["kind"] == "VIEW")),
        "helpful": list(dict.fromkeys(s["articleId"] for s in steps if s["kind"] == "HELPFUL")),
        "notHelpful": list(dict.fromkeys(s["articleId"] for s in steps if s["kind"] == "NOT_HELPFUL")),
        "story": [describe(s) for s in steps],
    }


def _subject(session: Doc, given: Any) -> str:
    if given is not None and str(given).strip():
        return str(given)
    searches = [s["query"] for s in session["steps"] if s["kind"] == "SEARCH"]
    subject = searches[0] if searches else "Help request from self-service"
    return subject[: cases.MAX_SUBJECT]


def _description(session: Doc, given: Any) -> str:
    story = "\n".join(f"- {describe(s)}" for s in session["steps"])
    tried = f"Tried in self-service before asking for help:\n{story}" if story else ""
    text = "\n\n".join(t for t in (str(given or "").strip(), tried) if t)
    return text[: cases.MAX_DESCRIPTION]


async def escalate(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`selfServiceEscalate`: open a SELF_SERVICE case carrying the session as its first timeline entries."""
    me = ctx.me
    _customer(ctx)
    given_subject, given_description = data.get("subject"), data.get("description")
    if given_subject is not None and len(str(given_subject).strip()) > cases.MAX_SUBJECT:
        raise invalid(f"subject is longer than {cases.MAX_SUBJECT} characters", "subject")
    if given_description is not None and len(str(given_description)) > cases.MAX_DESCRIPTION:
        raise invalid(f"description is longer than {cases.MAX_DESCRIPTION} characters", "description")
    session = await _load(ctx, data.get("session_id"))
    if session["status"] == "ESCALATED":
        raise conflict("This session was already escalated", "sessionId")
    await users.remember(ctx)

    async def write() -> dict[str, Any]:
        current = await _load(ctx, session["_id"])
        if current["status"] == "ESCALATED":
            raise conflict("This session was already escalated", "sessionId")
        opened = await cases.create(ctx, {"subject": _subject(current, given_subject), "channel": "SELF_SERVICE",
                                          "description": _description(current, given_description)})
        case_id = opened["case"]["_id"]
        for step in current["steps"]:
            await activity.emit(ctx, cases.stream(case_id), EVENT_KIND[step["kind"]], describe(step),
                                _step_data(current["_id"], step), visibility=Visibility.PUBLIC)
        case = await ctx.db["cases"].find_one_and_update({"_id": case_id},
                                                         {"$set": {"selfService": summary_of(current)}})
        now = core.now()
        updated = await ctx.db["selfservice_sessions"].find_one_and_update(
            {"_id": current["_id"], "status": current["status"], "stepCount": current["stepCount"]},
            {"$set": {"status": "ESCALATED", "escalatedAt": now, "updatedAt": now, "caseId": case_id}},
        )
        if updated is None or case is None:
            raise conflict("The session changed meanwhile; retry", "sessionId")
        await activity.emit(ctx, stream(current["_id"]), "selfservice.escalated",
                            f"{me.name} asked for help (case “{case['subject']}”)",
                            {"sessionId": current["_id"], "caseId": case_id}, visibility=Visibility.PUBLIC)
        return {"case": case, "session": updated}

    result = await ctx.events.write(write)
    ctx.loader("cases").prime(result["case"]["_id"], result["case"])
    ctx.loader("selfservice_sessions").clear(session["_id"])
    return result


async def of_case(ctx: Context, case: Doc) -> Doc | None:
    """The session a case was escalated from, for readers of the case."""
    summary = case.get("selfService")
    if not summary or not cases.can_read(ctx, case):
        return None
    # its steps are PUBLIC entries of the case's timeline already: every reader of the case sees it
    result: Doc | None = await ctx.loader("selfservice_sessions").load(summary["sessionId"])
    return result


async def _readable(ctx: Context, session_id: str) -> bool:
    return await get(ctx, session_id) is not None


activity.register_stream("selfservice", _readable)
