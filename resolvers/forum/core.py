"""Forum threads: documents, audiences, validation, reads and the `forum:<id>` stream.

Every forum thread of a tenant is public: customers of the tenant and anonymous readers naming it in
`X-Hub-Tenant` read the question, its published answers, the accepted answer and the promoted
article (when they may read that article). Only staff and the asker read `caseId`; only staff read
the draft answer, the suggested experts and the thread's internal notes (the `forum_…` comment
thread). Events on `forum:<id>`: see `docs/events.md`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.errors import invalid
from hub.events import Event, Visibility
from hub.store import Doc, register_indexes
from resolvers import activity, notifications, public, threads
from resolvers.articles.core import terms as articles_terms
from resolvers.context import Context
from resolvers.pagination import Page, clamp, paginate

_ORDER = [("updatedAt", DESCENDING), ("_id", DESCENDING)]
register_indexes(
    "forum_threads",
    IndexModel([("tenant", ASCENDING), *_ORDER]),
    *(IndexModel([("tenant", ASCENDING), (path, ASCENDING), *_ORDER]) for path in ("status", "tags", "askerId")),
    IndexModel([("tenant", ASCENDING), ("terms", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("caseId", ASCENDING)]),
)
register_indexes("forum_answers", IndexModel([("tenant", ASCENDING), ("threadId", ASCENDING), ("_id", ASCENDING)]))
register_indexes("forum_drafts", IndexModel([("tenant", ASCENDING), ("threadId", ASCENDING)], unique=True))

STATUSES = ("OPEN", "ANSWERED", "RESOLVED")
MAX_TITLE, MAX_BODY, MAX_NAME = 300, 20_000, 100
MAX_TAGS, MAX_TAG = 10, 50
MAX_TEXT_FILTER = 200
MAX_ANSWERS = 100
MAX_TERMS = 2000
EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]{2,}$")
_THREAD_ID = re.compile(r"^forum_[0-9a-f]{24}$")
STOP_WORDS = frozenset(
    "a an and are as at be but by can do does for from get got has have how i if in into is it its my "
    "no not of on or our so than that the their then there this to was we what when where which who "
    "why will with you your".split()
)


def stream(thread_id: str) -> str:
    return f"forum:{thread_id}"


def now() -> datetime:
    """The current time at the store's (millisecond) precision."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


# -- validation ----------------------------------------------------------------------------------


def text(value: Any, field: str, limit: int, *, required: bool = True, strip: bool = True) -> str:
    """A plain-text field, kept verbatim (HTML included; clients escape it), at most `limit` long."""
    if value is not None and not isinstance(value, str):
        raise invalid(f"{field} must be a string", field)
    raw = value or ""
    if required and not raw.strip():
        raise invalid(f"{field} must not be empty", field)
    out = raw.strip() if strip else raw
    if len(out) > limit:
        raise invalid(f"{field} is longer than {limit} characters", field)
    return out


def labels(values: Any, field: str = "tags") -> list[str]:
    out = sorted({str(v).strip().lower() for v in values or [] if str(v).strip()})
    if len(out) > MAX_TAGS:
        raise invalid(f"At most {MAX_TAGS} {field}", field)
    if any(len(v) > MAX_TAG for v in out):
        raise invalid(f"Each of {field} must be at most {MAX_TAG} characters", field)
    return out


def email(value: Any) -> str:
    """A plausible e-mail address, lower-cased (it keys the anonymous poster's profile)."""
    address = (value or "").strip().lower() if isinstance(value, str) else ""
    if not address:
        raise invalid("Anonymous questions need an email (or sign in)", "email")
    if len(address) > 254 or not EMAIL.match(address):
        raise invalid("email is not a valid e-mail address", "email")
    return address


def thread_id_of(value: Any, field: str = "threadId") -> str:
    if not isinstance(value, str) or not _THREAD_ID.match(value):
        raise invalid("Not a forum thread id", field)
    return value


def terms(text: str) -> list[str]:
    """Lower-cased words of at least two characters (as articles index them)."""
    return articles_terms(text)


def significant(words: list[str]) -> list[str]:
    """Words that say what a text is about (no stop words)."""
    return [w for w in words if w not in STOP_WORDS]


def terms_of(title: str, body: str, tags: list[str]) -> list[str]:
    return terms(f"{title} {body} {' '.join(tags)}")[:MAX_TERMS]


# -- audiences -----------------------------------------------------------------------------------


def is_asker(ctx: Context, thread: Doc) -> bool:
    """The caller asked this question (anonymous posters only within their own post request)."""
    me = ctx.me
    return bool(me.sub) and me.sub == thread["askerId"] and public.is_anonymous(ctx) == bool(thread["anonymous"])


def may_see_case(ctx: Context, thread: Doc) -> bool:
    return ctx.me.is_staff or is_asker(ctx, thread)


def is_staff(ctx: Context) -> bool:
    return ctx.me.is_staff


# -- reads (`ctx` is a view from `resolvers.public.view`) ------------------------------------------


async def get(ctx: Context, thread_id: str) -> Doc | None:
    """A thread of the caller's (or the hinted) tenant; every thread is public."""
    if not isinstance(thread_id, str) or not _THREAD_ID.match(thread_id):
        return None
    return await ctx.loader("forum_threads").load(thread_id)


async def list_threads(ctx: Context, filter: dict[str, Any], first: int | None, after: str | None) -> Page:
    """Threads, most recently active first, narrowed by status, tag, words of the text, or `mine`."""
    query: dict[str, Any] = {}
    if filter.get("status"):
        query["status"] = {"$in": list(filter["status"])}
    if filter.get("tag"):
        query["tags"] = str(filter["tag"]).strip().lower()
    if filter.get("mine"):
        if public.is_anonymous(ctx):
            raise invalid("`mine` needs a signed-in caller", "mine")
        query["askerId"] = ctx.me.sub
    if filter.get("text"):
        words = significant(terms(text(filter["text"], "text", MAX_TEXT_FILTER)))
        if words:
            query["terms"] = {"$all": words}
    return await paginate(ctx.db["forum_threads"], query, sort_key="updatedAt", first=first, after=after)


async def answers(ctx: Context, thread_id: str, first: int | None = None) -> list[Doc]:
    """Published answers, oldest first (drafts live elsewhere and never appear here)."""
    limit = clamp(first, MAX_ANSWERS)
    if not limit:
        return []
    return await ctx.db["forum_answers"].find({"threadId": thread_id}, sort=[("_id", 1)], limit=limit)


async def answer(ctx: Context, answer_id: str | None) -> Doc | None:
    return await ctx.loader("forum_answers").load(answer_id) if answer_id else None


async def draft(ctx: Context, thread_id: str) -> Doc | None:
    """The thread's draft answer: staff only (`None` for everybody else)."""
    if not ctx.me.is_staff:
        return None
    return await ctx.db["forum_drafts"].find_one({"threadId": thread_id})


# -- registrations -------------------------------------------------------------------------------


async def _readable(ctx: Context, thread_id: str) -> bool:
    return await get(ctx, thread_id) is not None


async def _staff_on_thread(ctx: Context, thread_id: str) -> bool:
    return ctx.me.is_staff and await _readable(ctx, thread_id)


NOTIFY_ASKER = ("forum.answer_posted", "forum.answer_accepted")


async def _recipients(ctx: Context, thread_id: str, event: Event) -> set[str]:
    """The (signed-in) asker of answers and acceptance; the accepted answer's author; mentions.

    INTERNAL events (drafts, promotion, internal notes) reach staff only.
    """
    thread = await ctx.db["forum_threads"].find_one({"_id": thread_id}, projection={"askerId": 1, "anonymous": 1})
    if thread is None:
        return set()
    uids = set(notifications.mentioned(event))
    if event.kind in NOTIFY_ASKER and not thread.get("anonymous"):
        uids.add(thread["askerId"])
    if event.kind == "forum.answer_accepted" and isinstance(event.data.get("authorId"), str):
        uids.add(event.data["authorId"])
    if event.visibility is Visibility.INTERNAL:
        found = await ctx.db["users"].find({"uid": {"$in": sorted(uids)}}, projection={"uid": 1, "roles": 1})
        uids = {d["uid"] for d in found if set(d.get("roles") or []) & STAFF_ROLES}
    return uids


activity.register_stream("forum", _readable)
threads.register_subject("forum", _readable, _staff_on_thread, stream)
notifications.register_recipients("forum", _recipients)
