"""Receive and respond: questions (with their linked case), answers, accepting an answer.

- `forumQuestionPost`: a customer (token) or an anonymous poster with an e-mail (`X-Hub-Tenant`).
  Staff answer questions; they do not ask them. One write creates the public thread and its
  `FORUM` case (customer = poster; anonymous posters get a `users` profile keyed
  `anon_<sha256(email)>`), and the payload acknowledges receipt.
- `forumAnswerPost`: staff (typed, or `fromDraft: true` to publish the thread's draft) and signed-in
  customers (community answers, rate-limited) answer any thread; anonymous callers cannot.
- `forumAnswerAccept`: the signed-in asker or staff accept one answer: the thread is `RESOLVED` and
  its case `SOLVED` (when the case's status allows it) in the same write.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hub import ratelimit
from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id
from resolvers import activity, cases, public, users
from resolvers.context import Context
from resolvers.forum import core, indexing
from resolvers.threads import excerpt

POST_PER_USER = 5
"""Questions per poster (signed-in user or anonymous e-mail) per minute."""
POST_PER_IP_ANONYMOUS = 5
"""Anonymous questions per client IP per minute."""
POST_PER_IP = 30
"""Questions per client IP per minute, signed in or not (offices share an address)."""
ANSWER_PER_CUSTOMER = 10
"""Community answers per customer per minute (staff are not limited)."""
WINDOW_S = 60


def anonymous_uid(address: str) -> str:
    """The stable user id of an anonymous poster: derived from the (lower-cased) e-mail."""
    return "anon_" + hashlib.sha256(address.encode()).hexdigest()[:24]


async def _limit(ctx: Context, tenant: str, uid: str, anonymous: bool) -> None:
    base = f"forum:post:{tenant}"
    ip = ctx.client_ip or "unknown"
    if anonymous:
        await ratelimit.hit(ctx.hub, f"{base}:anon-ip:{ip}", POST_PER_IP_ANONYMOUS, WINDOW_S)
    await ratelimit.hit(ctx.hub, f"{base}:ip:{ip}", POST_PER_IP, WINDOW_S)
    await ratelimit.hit(ctx.hub, f"{base}:user:{uid}", POST_PER_USER, WINDOW_S)


def _case(case_id: str, uid: str, title: str, body: str, tags: list[str], at: Any) -> Doc:
    """The linked case, shaped like `resolvers.cases.create` makes them (channel `FORUM`)."""
    return {
        "_id": case_id, "subject": title, "description": body[: cases.MAX_DESCRIPTION], "status": "NEW",
        "priority": "NORMAL", "channel": "FORUM", "tags": tags, "skills": [], "customerId": uid,
        "assigneeId": None, "participants": [uid], "followers": [uid], "version": 1, "createdAt": at,
        "updatedAt": at, "solvedAt": None, "slaDueAt": cases.sla_due(at, "NORMAL"), "symptom": "",
        "cause": "", "resolution": "", "createdBy": uid,
    }


async def post_question(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Receive a question: thread + case in one write, events, and a receipt (payload `view`: the
    context the returned objects are read under, anonymous for anonymous posters)."""
    title = core.text(data.get("title"), "title", core.MAX_TITLE)
    body = core.text(data.get("body"), "body", core.MAX_BODY, strip=False)
    tags = core.labels(data.get("tags"))
    anonymous = ctx.identity is None
    if anonymous:
        address = core.email(data.get("email"))
        name = core.text(data.get("name"), "name", core.MAX_NAME, required=False) or "Guest"
        actor = public.as_poster(ctx, anonymous_uid(address), name)
    else:
        actor = ctx
        if ctx.me.is_staff:
            raise forbidden("Forum questions come from customers; staff answer them", "title")
        await users.remember(ctx)
    me = actor.me
    await _limit(ctx, me.tenant, me.sub, anonymous)
    at = core.now()
    thread: Doc = {
        "_id": new_id("forum"), "title": title, "body": body, "tags": tags, "status": "OPEN",
        "askerId": me.sub, "anonymous": anonymous, "caseId": None, "answerCount": 0,
        "acceptedAnswerId": None, "promotedArticleId": None, "createdAt": at, "updatedAt": at,
        "terms": core.terms_of(title, body, tags), "version": 1,
    }
    case = _case(new_id("case"), me.sub, title, body, tags, at)
    thread["caseId"] = case["_id"]

    async def write() -> None:
        if anonymous:
            await actor.db["users"].update_one(
                {"uid": me.sub},
                {"$set": {"name": me.name, "email": address, "seenAt": at},
                 "$setOnInsert": {"_id": f"usr|{me.tenant}|{me.sub}", "roles": ["customer"], "skills": [],
                                  "kcs": None, "anonymous": True, "createdAt": at}},
                upsert=True,
            )
        await actor.db["cases"].insert(case)
        await actor.db["forum_threads"].insert(thread)
        await activity.emit(
            actor, cases.stream(case["_id"]), "case.created", f"{me.name} asked “{title}” in the forum",
            {"subject": title, "priority": "NORMAL", "channel": "FORUM", "customerId": me.sub,
             "forumThreadId": thread["_id"]},
            visibility=Visibility.PUBLIC,
        )
        await activity.emit(
            actor, core.stream(thread["_id"]), "forum.question_posted", f"{me.name} asked “{title}”",
            {"threadId": thread["_id"], "title": title, "tags": tags}, visibility=Visibility.PUBLIC,
        )
        await indexing.thread(actor, thread)

    await actor.events.write(write)
    actor.loader("forum_threads").prime(thread["_id"], thread)
    receipt = {"received_at": at, "reference": case["_id"], "thread_id": thread["_id"]}
    return {"thread": thread, "case": case, "receipt": receipt, "view": actor}


async def post_answer(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Publish an answer: typed (`body`) or, for staff, the thread's draft (`fromDraft: true`)."""
    me = ctx.me
    thread_id = core.thread_id_of(data.get("thread_id"))
    from_draft = bool(data.get("from_draft"))
    if from_draft and not me.is_staff:
        raise forbidden("Only staff publish drafts", "fromDraft")
    body = None if from_draft else core.text(data.get("body"), "body", core.MAX_BODY, strip=False)
    if await core.get(ctx, thread_id) is None:
        raise not_found("Forum thread", "threadId")
    if not me.is_staff:
        await ratelimit.hit(ctx.hub, f"forum:answer:{me.tenant}:{me.sub}", ANSWER_PER_CUSTOMER, WINDOW_S)
    await users.remember(ctx)

    async def write() -> Doc:
        thread = await ctx.db["forum_threads"].find_one({"_id": thread_id})
        if thread is None:
            raise not_found("Forum thread", "threadId")
        contributors = [me.sub]
        text = body
        if from_draft:
            draft = await ctx.db["forum_drafts"].find_one({"threadId": thread_id})
            if draft is None or not draft["body"].strip():
                raise invalid("This thread has no draft answer to publish", "fromDraft")
            expected = data.get("expected_version")
            if expected is not None and expected != draft["version"]:
                raise conflict(f"The draft changed (now version {draft['version']}); reload and retry",
                               "expectedVersion")
            text = draft["body"]
            contributors = sorted({*draft.get("contributors", []), me.sub})
            if not await ctx.db["forum_drafts"].delete_one({"_id": draft["_id"], "version": draft["version"]}):
                raise conflict("The draft changed meanwhile; reload and retry", "expectedVersion")
        assert text is not None
        at = core.now()
        answer: Doc = {
            "_id": new_id("fans"), "threadId": thread_id, "body": text, "authorId": me.sub,
            "contributors": contributors, "fromDraft": from_draft, "accepted": False, "createdAt": at,
            "staff": me.is_staff,
        }
        await ctx.db["forum_answers"].insert(answer)
        status = "ANSWERED" if thread["status"] == "OPEN" else thread["status"]
        await ctx.db["forum_threads"].update_one(
            {"_id": thread_id}, {"$set": {"status": status, "updatedAt": at}, "$inc": {"answerCount": 1, "version": 1}}
        )
        ctx.loader("forum_threads").clear(thread_id)
        await indexing.thread(ctx, thread)
        await activity.emit(
            ctx, core.stream(thread_id), "forum.answer_posted", f"{me.name} answered “{thread['title']}”",
            {"threadId": thread_id, "answerId": answer["_id"], "body": excerpt(text), "fromDraft": from_draft},
            visibility=Visibility.PUBLIC,
        )
        if thread.get("caseId"):
            await activity.emit(
                ctx, cases.stream(thread["caseId"]), "forum.answer_posted",
                f"{me.name} answered the forum question", {"threadId": thread_id, "answerId": answer["_id"]},
            )
        return answer

    answer = await ctx.events.write(write)
    ctx.loader("forum_answers").prime(answer["_id"], answer)
    return {"answer": answer, "thread": await core.get(ctx, thread_id)}


async def accept(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Accept an answer (the asker or staff): thread `RESOLVED`, linked case `SOLVED`, one write.

    Accepting the accepted answer again changes nothing; accepting another one is `CONFLICT`.
    """
    me = ctx.me
    answer_id = data.get("answer_id")
    found = await core.answer(ctx, answer_id) if isinstance(answer_id, str) else None
    thread = await core.get(ctx, found["threadId"]) if found else None
    if found is None or thread is None:
        raise not_found("Answer", "answerId")
    if not me.is_staff and not core.is_asker(ctx, thread):
        raise forbidden("Only the asker or staff may accept an answer", "answerId")

    async def write() -> tuple[Doc, Doc]:
        current = await ctx.db["forum_threads"].find_one({"_id": thread["_id"]})
        assert current is not None
        if current.get("acceptedAnswerId") == found["_id"]:
            return current, found
        if current.get("acceptedAnswerId"):
            raise conflict(f"Answer {current['acceptedAnswerId']} is already accepted", "answerId")
        at = core.now()
        answer = await ctx.db["forum_answers"].find_one_and_update(
            {"_id": found["_id"]}, {"$set": {"accepted": True, "acceptedAt": at, "acceptedBy": me.sub}}
        )
        updated = await ctx.db["forum_threads"].find_one_and_update(
            {"_id": current["_id"], "acceptedAnswerId": None},
            {"$set": {"status": "RESOLVED", "acceptedAnswerId": found["_id"], "updatedAt": at},
             "$inc": {"version": 1}},
        )
        if answer is None or updated is None:
            raise conflict("The thread changed meanwhile; reload and retry", "answerId")
        await _solve_case(ctx, current.get("caseId"), found["_id"], at)
        await activity.emit(
            ctx, core.stream(current["_id"]), "forum.answer_accepted",
            f"{me.name} accepted an answer to “{current['title']}”",
            {"threadId": current["_id"], "answerId": found["_id"], "authorId": found["authorId"]},
            visibility=Visibility.PUBLIC,
        )
        return updated, answer

    updated, answer = await ctx.events.write(write)
    ctx.loader("forum_threads").clear(thread["_id"])
    ctx.loader("forum_answers").clear(found["_id"])
    return {"answer": answer, "thread": updated}


async def _solve_case(ctx: Context, case_id: str | None, answer_id: str, at: Any) -> None:
    """Move the linked case to `SOLVED` (inside the accept's write), if its status allows it."""
    if not case_id:
        return
    case = await ctx.db["cases"].find_one({"_id": case_id})
    if case is None or "SOLVED" not in cases.TRANSITIONS.get(case["status"], set()):
        return
    solved = await ctx.db["cases"].find_one_and_update(
        {"_id": case_id, "version": case["version"]},
        {"$set": {"status": "SOLVED", "solvedAt": at, "updatedAt": at}, "$inc": {"version": 1}},
    )
    if solved is None:
        raise conflict("The linked case changed meanwhile; retry", "answerId")
    ctx.loader("cases").clear(case_id)
    await activity.emit(
        ctx, cases.stream(case_id), "case.status_changed",
        f"{ctx.me.name} accepted a forum answer: {case['status']} → SOLVED",
        {"from": case["status"], "to": "SOLVED", "answerId": answer_id}, visibility=Visibility.PUBLIC,
    )

