"""Comment threads on any subject: cases now; articles, forum questions and ideas plug in.

A thread is identified by its subject's id; the id's prefix (`case_…`) names the subject kind,
whose module declares who may read and comment and which stream gets the events
(`register_subject`). Comments are plain text, oldest first, `PUBLIC` or `INTERNAL`; customers
never see internal ones in any list, count or event. Deleting is soft (the comment keeps its
place, its text is erased); every edit keeps the replaced text in `edits`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.errors import HubError, conflict, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, new_id, register_indexes
from resolvers import activity, attachments, cases, users
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "comments",
    IndexModel([("tenant", ASCENDING), ("subjectId", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("tenant", ASCENDING), ("subjectId", ASCENDING), ("visibility", ASCENDING), ("_id", ASCENDING)]),
)

MAX_BODY = 20_000
EXCERPT = 200
MAX_MENTIONS = 50
MAX_EDITS = 100
# `@uid` not preceded by a word character (so e-mail addresses are not mentions).
MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)")

Check = Callable[[Context, str], Awaitable[bool]]


@dataclass(frozen=True)
class Subject:
    """A kind of thing that can carry a thread (`case`, `article`, `forum`, `idea`)."""

    prefix: str
    can_read: Check
    can_comment: Check
    stream_of: Callable[[str], str]


SUBJECTS: dict[str, Subject] = {}


def register_subject(prefix: str, can_read: Check, can_comment: Check, stream_of: Callable[[str], str]) -> None:
    """Let ids `<prefix>_…` carry threads; events go to `stream_of(subject_id)`."""
    SUBJECTS[prefix] = Subject(prefix, can_read, can_comment, stream_of)


async def readable_subject(ctx: Context, subject_id: str) -> Subject | None:
    """The subject kind of `subject_id` if the caller may read that subject, else `None`."""
    prefix, sep, rest = subject_id.partition("_")
    subject = SUBJECTS.get(prefix) if sep and rest else None
    if subject is None or not await subject.can_read(ctx, subject_id):
        return None
    return subject


def audience(ctx: Context) -> dict[str, Any]:
    """The part of a thread the caller sees: customers only `PUBLIC` comments."""
    return {} if ctx.me.is_staff else {"visibility": Visibility.PUBLIC.value}


def visible(ctx: Context, comment: Doc) -> bool:
    return ctx.me.is_staff or comment["visibility"] == Visibility.PUBLIC.value


async def get_thread(ctx: Context, subject_id: str) -> Doc | None:
    """The thread of a subject the caller may read (`{"_id": subject_id}`), else `None`."""
    return {"_id": subject_id} if await readable_subject(ctx, subject_id) else None


@dataclass
class CommentPage(Page):
    """A page of comments that knows its thread (so a connection can count it lazily)."""

    subject_id: str = ""


async def list_comments(ctx: Context, subject_id: str, first: int | None, after: str | None) -> Page:
    """A page of the thread, oldest first, filtered by audience (empty if not readable)."""
    if await readable_subject(ctx, subject_id) is None:
        return CommentPage(items=[], cursors=[], has_next=False, subject_id=subject_id)
    page = await paginate(
        ctx.db["comments"], {"subjectId": subject_id, **audience(ctx)},
        sort_key="_id", descending=False, first=first, after=after,
    )
    return CommentPage(items=page.items, cursors=page.cursors, has_next=page.has_next, subject_id=subject_id)


async def count_comments(ctx: Context, subject_id: str) -> int:
    """How many comments of the thread the caller may see (deleted ones keep their place)."""
    if await readable_subject(ctx, subject_id) is None:
        return 0
    return await ctx.db["comments"].count({"subjectId": subject_id, **audience(ctx)})


async def get(ctx: Context, comment_id: str) -> Doc | None:
    """A comment the caller may see, else `None`."""
    comment = await ctx.loader("comments").load(comment_id)
    if comment is None or not visible(ctx, comment):
        return None
    return comment if await readable_subject(ctx, comment["subjectId"]) else None


def may_see_edits(ctx: Context, comment: Doc) -> bool:
    return ctx.me.is_staff or comment["authorId"] == ctx.me.sub


def excerpt(body: str) -> str:
    return body if len(body) <= EXCERPT else body[: EXCERPT - 1] + "…"


def _body(value: str | None) -> str:
    body = value or ""
    if not body.strip():
        raise invalid("body must not be empty", "body")
    if len(body) > MAX_BODY:
        raise invalid(f"body is longer than {MAX_BODY} characters", "body")
    return body


async def _mentions(ctx: Context, body: str, visibility: str) -> list[str]:
    """The users `@mentioned` in `body`; unknown users and customers in internal notes are INVALID."""
    names = list(dict.fromkeys(MENTION.findall(body)))
    if not names:
        return []
    if len(names) > MAX_MENTIONS:
        raise invalid(f"At most {MAX_MENTIONS} users may be mentioned", "body")
    found = await users.find_many(ctx, names)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise invalid(f"Unknown users mentioned: {', '.join('@' + n for n in unknown)}", "body")
    if visibility == Visibility.INTERNAL.value:
        customers = [n for n in names if not set(found[n].get("roles") or []) & STAFF_ROLES]
        if customers:
            raise invalid(
                f"Customers cannot be mentioned in an internal comment: {', '.join('@' + n for n in customers)}",
                "body",
            )
    return names


async def add(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`commentAdd`: customers add only `PUBLIC` comments on subjects they can read."""
    me = ctx.me
    subject_id = str(data["subject_id"])
    subject = await readable_subject(ctx, subject_id)
    if subject is None:
        raise not_found("Subject", "subjectId")
    if not await subject.can_comment(ctx, subject_id):
        raise forbidden("You may not comment on this subject", "subjectId")
    visibility = data.get("visibility") or Visibility.PUBLIC.value
    if visibility == Visibility.INTERNAL.value and not me.is_staff:
        raise forbidden("Only staff may add internal comments", "visibility")
    body = _body(data.get("body"))
    mentions = await _mentions(ctx, body, visibility)
    attachment_ids = await attachments.check(ctx, data.get("attachment_ids"))
    await users.remember(ctx)
    now = datetime.now(UTC)
    comment: Doc = {
        "_id": new_id("cmt"), "subjectId": subject_id, "subjectKind": subject.prefix, "body": body,
        "visibility": visibility, "authorId": me.sub, "createdAt": now, "editedAt": None,
        "deleted": False, "mentions": mentions, "attachmentIds": attachment_ids, "edits": [],
        "version": 1,
    }

    async def write() -> None:
        await ctx.db["comments"].insert(comment)
        await attachments.link(ctx, attachment_ids, "comment", comment["_id"])
        what = "an internal note" if visibility == Visibility.INTERNAL.value else "a comment"
        await activity.emit(
            ctx, subject.stream_of(subject_id), "comment.added", f"{me.name} added {what}",
            {"commentId": comment["_id"], "subjectId": subject_id, "body": excerpt(body), "mentions": mentions},
            visibility=Visibility(visibility),
        )

    await ctx.events.write(write)
    ctx.loader("comments").prime(comment["_id"], comment)
    return {"comment": comment}


async def _changeable(ctx: Context, comment_id: str) -> tuple[Doc, Subject]:
    """A live comment the caller may change: its author, or a supervisor/admin."""
    comment = await ctx.db["comments"].find_one({"_id": comment_id})
    subject = await readable_subject(ctx, comment["subjectId"]) if comment and visible(ctx, comment) else None
    if comment is None or subject is None:
        raise not_found("Comment", "commentId")
    if comment["authorId"] != ctx.me.sub and not ctx.me.is_supervisor:
        raise forbidden("Only the author or a supervisor may change this comment", "commentId")
    if comment["deleted"]:
        raise invalid("The comment was deleted", "commentId")
    return comment, subject


async def _update(ctx: Context, comment: Doc, update: dict[str, Any]) -> Doc:
    """Apply `update` if nobody changed the comment since it was read (inside a write)."""
    update = {**update, "$inc": {"version": 1}}
    updated = await ctx.db["comments"].find_one_and_update(
        {"_id": comment["_id"], "version": comment["version"], "deleted": False}, update
    )
    if updated is None:
        raise conflict("The comment changed meanwhile; reload and retry", "commentId")
    ctx.loader("comments").clear(comment["_id"])
    return updated


async def edit(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`commentEdit`: new text, the replaced text kept in `edits`."""
    me = ctx.me
    comment, subject = await _changeable(ctx, str(data["comment_id"]))
    body = _body(data.get("body"))
    if body == comment["body"]:
        return {"comment": comment}
    mentions = await _mentions(ctx, body, comment["visibility"])
    now = datetime.now(UTC)
    entry = {"body": comment["body"], "editedAt": now, "editorId": me.sub}

    async def write() -> Doc:
        updated = await _update(ctx, comment, {
            "$set": {"body": body, "editedAt": now, "mentions": mentions},
            "$push": {"edits": {"$each": [entry], "$slice": -MAX_EDITS}},
        })
        added = [m for m in mentions if m not in comment["mentions"]]
        await activity.emit(
            ctx, subject.stream_of(comment["subjectId"]), "comment.edited", f"{me.name} edited a comment",
            {"commentId": comment["_id"], "subjectId": comment["subjectId"], "body": excerpt(body),
             "mentions": mentions, "newMentions": added},
            visibility=Visibility(comment["visibility"]),
        )
        return updated

    return {"comment": await ctx.events.write(write)}


async def delete(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`commentDelete`: erase the text, mentions and history; the comment keeps its place."""
    me = ctx.me
    comment, subject = await _changeable(ctx, str(data["comment_id"]))

    async def write() -> Doc:
        updated = await _update(ctx, comment, {"$set": {
            "deleted": True, "body": "", "mentions": [], "edits": [], "attachmentIds": [],
            "deletedAt": datetime.now(UTC), "deletedBy": me.sub,
        }})
        await attachments.unlink(ctx, comment.get("attachmentIds") or [], "comment", comment["_id"])
        await activity.emit(
            ctx, subject.stream_of(comment["subjectId"]), "comment.deleted", f"{me.name} deleted a comment",
            {"commentId": comment["_id"], "subjectId": comment["subjectId"]},
            visibility=Visibility(comment["visibility"]),
        )
        return updated

    return {"comment": await ctx.events.write(write)}


async def set_visibility(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`commentSetVisibility` (staff): customers get `comment.removed` / `comment.added`, never the old text."""
    me = ctx.me
    if not me.is_staff:
        raise forbidden("Only staff may change the visibility of a comment", "visibility")
    comment, subject = await _changeable(ctx, str(data["comment_id"]))
    target = str(data["visibility"])
    if target == comment["visibility"]:
        return {"comment": comment}
    if target == Visibility.INTERNAL.value:
        try:
            await _mentions(ctx, comment["body"], target)
        except HubError as exc:
            raise invalid("A comment mentioning a customer cannot become internal", "visibility") from exc

    async def write() -> Doc:
        updated = await _update(ctx, comment, {"$set": {"visibility": target}})
        stream = subject.stream_of(comment["subjectId"])
        ids = {"commentId": comment["_id"], "subjectId": comment["subjectId"]}
        if target == Visibility.INTERNAL.value:
            await activity.emit(ctx, stream, "comment.removed", f"{me.name} withdrew a comment",
                                ids, visibility=Visibility.PUBLIC)
        else:
            await activity.emit(
                ctx, stream, "comment.added", f"{me.name} published a comment",
                {**ids, "body": excerpt(comment["body"]), "mentions": comment["mentions"], "published": True},
                visibility=Visibility.PUBLIC,
            )
        return updated

    return {"comment": await ctx.events.write(write)}


async def _case_readable(ctx: Context, case_id: str) -> bool:
    return await cases.get(ctx, case_id) is not None


async def _comment_readable(ctx: Context, comment_id: str) -> bool:
    comment = await get(ctx, comment_id)
    return comment is not None and not comment["deleted"]


register_subject("case", _case_readable, _case_readable, lambda case_id: cases.stream(case_id))
attachments.register_reference("comment", _comment_readable)
