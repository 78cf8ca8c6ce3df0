"""Knowledge articles: documents, KCS licences, visibility and lists (shared by the other modules).

KCS licences (`level`): customers 0 (read and rate only), staff by their `kcs` claim —
candidate 1 (the default for staff without one), contributor 2, publisher 3 — and the `editor`
role (coach) or `admin` 4, who may do anything a publisher can plus work the review queues.

- candidate: create internal articles; edit their own internal articles; cannot validate.
- contributor: edit any internal article; set any state on internal articles.
- publisher: everything above on external articles too, and publishing (`audience: EXTERNAL`).
- customers see only published articles (`EXTERNAL` + `VALIDATED`), everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub.auth import Identity
from hub.errors import HubError, forbidden, invalid, not_found
from hub.events import Visibility
from hub.store import Doc, register_indexes
from resolvers import activity
from resolvers.context import Context
from resolvers.pagination import Page, paginate

CUSTOMER, CANDIDATE, CONTRIBUTOR, PUBLISHER, EDITOR = 0, 1, 2, 3, 4
KCS_RANK = {"candidate": CANDIDATE, "contributor": CONTRIBUTOR, "publisher": PUBLISHER}

AUDIENCES = ("INTERNAL", "EXTERNAL")
STATES = ("WORK_IN_PROGRESS", "NOT_VALIDATED", "VALIDATED", "ARCHIVED")
#: Content fields kept in every revision snapshot (state is not content: it is not revisioned).
CONTENT = ("title", "issue", "environment", "cause", "resolution", "tags", "product", "audience")
TEXT_LIMITS = {"title": 300, "issue": 20_000, "environment": 20_000, "cause": 50_000,
               "resolution": 100_000, "product": 100}
MAX_TAGS, MAX_TAG = 30, 50
MAX_TERMS = 4000
MAX_QUERY, MAX_QUERY_WORDS = 500, 20

ARTICLE_INDEXES = [
    [("rank", DESCENDING), ("_id", DESCENDING)],
    [("audience", ASCENDING), ("state", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("state", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("tags", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("product", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("flagged", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("ownerId", ASCENDING), ("rank", DESCENDING), ("_id", DESCENDING)],
    [("watchers", ASCENDING)],
    [("terms", ASCENDING)],
]
register_indexes("articles", *(IndexModel([("tenant", ASCENDING), *keys]) for keys in ARTICLE_INDEXES))


def stream(article_id: str) -> str:
    return f"article:{article_id}"


def level(me: Identity) -> int:
    """The caller's KCS licence (see the module docstring)."""
    if not me.is_staff:
        return CUSTOMER
    if me.has("editor"):  # admins included
        return EDITOR
    return KCS_RANK.get(me.kcs or "candidate", CANDIDATE)


def published(doc: Doc) -> bool:
    """Published externally: what customers may read."""
    return doc.get("audience") == "EXTERNAL" and doc.get("state") == "VALIDATED"


def can_read(ctx: Context, doc: Doc) -> bool:
    return ctx.me.is_staff or published(doc)


def visible_filter(ctx: Context) -> dict[str, Any]:
    """The filter restricting `articles` queries to what the caller may read."""
    return {} if ctx.me.is_staff else {"audience": "EXTERNAL", "state": "VALIDATED"}


def event_visibility(doc: Doc) -> Visibility:
    """Content and state events are PUBLIC while the article is published, else INTERNAL."""
    return Visibility.PUBLIC if published(doc) else Visibility.INTERNAL


def check_edit(me: Identity, doc: Doc, changes: dict[str, Any] | None = None) -> None:
    """Raise FORBIDDEN unless the caller's licence covers editing `doc` with `changes`."""
    rank = level(me)
    if rank == CUSTOMER:
        raise forbidden("Customers cannot author articles; leave feedback instead", "articleId")
    external = doc.get("audience") == "EXTERNAL" or (changes or {}).get("audience") == "EXTERNAL"
    if external and rank < PUBLISHER:
        raise forbidden("Only KCS publishers may publish or edit external articles", "audience")
    if rank == CANDIDATE and doc.get("ownerId") != me.sub:
        raise forbidden("KCS candidates may edit only their own articles; propose an edit instead", "articleId")


def may_edit(me: Identity, doc: Doc) -> bool:
    try:
        check_edit(me, doc)
    except HubError:
        return False
    return True


def may_validate(me: Identity, doc: Doc) -> bool:
    """Licensed to validate this article (contributor on internal, publisher on external)."""
    needed = PUBLISHER if doc.get("audience") == "EXTERNAL" else CONTRIBUTOR
    return level(me) >= needed


def check_state(me: Identity, doc: Doc, state: str) -> None:
    check_edit(me, doc)
    guarded = {"VALIDATED", "ARCHIVED"}
    if (state in guarded or doc["state"] in guarded) and not may_validate(me, doc):
        raise forbidden("Only KCS contributors may validate, archive or un-validate articles", "state")


def clean_text(value: Any, field: str, required: bool = False) -> str:
    if value is not None and not isinstance(value, str):
        raise invalid(f"{field} must be a string", field)
    text = (value or "").strip()
    if required and not text:
        raise invalid(f"{field} must not be empty", field)
    if len(text) > TEXT_LIMITS[field]:
        raise invalid(f"{field} is longer than {TEXT_LIMITS[field]} characters", field)
    return text


def clean_tags(values: list[str] | None) -> list[str]:
    tags = sorted({t.strip().lower() for t in values or [] if t and t.strip()})
    if len(tags) > MAX_TAGS:
        raise invalid(f"At most {MAX_TAGS} tags", "tags")
    if any(len(t) > MAX_TAG for t in tags):
        raise invalid(f"A tag is longer than {MAX_TAG} characters", "tags")
    return tags


def clean_content(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate and normalise the content fields present in `data` (all of them unless partial)."""
    out: dict[str, Any] = {}
    for field in CONTENT:
        if partial and field not in data:
            continue
        value = data.get(field)
        if field == "tags":
            out[field] = clean_tags(value)
        elif field == "audience":
            if partial and value is None:
                raise invalid("audience cannot be cleared", "audience")
            out[field] = value or "INTERNAL"
            if out[field] not in AUDIENCES:
                raise invalid(f"audience must be one of {', '.join(AUDIENCES)}", "audience")
        else:
            out[field] = clean_text(value, field, required=field == "title")
    return out


_WORD = re.compile(r"\w{2,}")


def terms(text: str) -> list[str]:
    return sorted(set(_WORD.findall(text.lower())))


def terms_of(doc: Doc) -> list[str]:
    """Lower-cased words of the content (indexed: the `text` filter matches all query words)."""
    text = " ".join(str(doc.get(f) or "") for f in CONTENT if f not in ("tags", "audience"))
    return terms(text + " " + " ".join(doc.get("tags") or []))[:MAX_TERMS]


def now() -> datetime:
    """The current time at the store's (millisecond) precision, so payloads equal later reads."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def rank_key(score: float, updated: datetime) -> str:
    """Precomputed list order: score descending, then most recently updated (a sortable string)."""
    millis = int(updated.astimezone(UTC).timestamp() * 1000)
    return f"{score:.6f}|{millis:015d}"


async def get(ctx: Context, article_id: str) -> Doc | None:
    """The article if the caller may read it, else `None` (existence never leaks)."""
    doc = await ctx.loader("articles").load(article_id)
    return doc if doc is not None and can_read(ctx, doc) else None


async def load_for_write(ctx: Context, article_id: str) -> Doc:
    """The current article inside a write, or NOT_FOUND when the caller may not read it."""
    doc = await ctx.db["articles"].find_one({"_id": article_id})
    if doc is None or not can_read(ctx, doc):
        raise not_found("Article", "articleId")
    return doc


def list_filter(ctx: Context, filter: dict[str, Any]) -> dict[str, Any]:
    """The store filter of an `ArticleFilter`, always within what the caller may read."""
    query: dict[str, Any] = {}
    clauses: list[dict[str, Any]] = [visible_filter(ctx)] if not ctx.me.is_staff else []
    if filter.get("state"):
        clauses.append({"state": {"$in": list(filter["state"])}})
    if filter.get("audience"):
        clauses.append({"audience": {"$in": list(filter["audience"])}})
    if filter.get("tag"):
        clauses.append({"tags": filter["tag"].strip().lower()})
    if filter.get("product"):
        clauses.append({"product": filter["product"].strip()})
    if filter.get("flagged") is not None:
        clauses.append({"flagged": bool(filter["flagged"])})
    if filter.get("owner_id"):
        clauses.append({"ownerId": filter["owner_id"]})
    if filter.get("text") and (words := terms(filter["text"][:MAX_QUERY])):
        clauses.append({"terms": {"$all": words[:MAX_QUERY_WORDS]}})
    extra: list[dict[str, Any]] = []
    for clause in clauses:
        for key, value in clause.items():
            if key in query:  # e.g. a customer's state filter on top of the visibility rule
                extra.append({key: value})
            else:
                query[key] = value
    return {"$and": [query, *extra]} if extra else query


async def list_articles(ctx: Context, filter: dict[str, Any], first: int | None, after: str | None) -> Page:
    """Articles the caller may read, best rated first (see `rank_key`)."""
    return await paginate(ctx.db["articles"], list_filter(ctx, filter), sort_key="rank", first=first, after=after)


async def count_articles(ctx: Context, filter: dict[str, Any]) -> int:
    return await ctx.db["articles"].count(list_filter(ctx, filter))


async def _readable(ctx: Context, article_id: str) -> bool:
    return await get(ctx, article_id) is not None


activity.register_stream("article", _readable)
