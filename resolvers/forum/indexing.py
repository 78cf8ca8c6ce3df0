"""Keeping forum threads and ideas in the search index (`search(kinds: [FORUM_THREAD, IDEA])`).

Both are public within their tenant, so they are indexed for every audience; drafts, internal
notes, linked cases and assessments are never indexed. Called inside the writes that change them.
The search domain is optional at run time: without `resolvers.search` these calls do nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from hub.store import Doc
from resolvers.context import Context

_search: Any = importlib.import_module("resolvers.search") if importlib.util.find_spec("resolvers.search") else None


async def _index(ctx: Context, kind: str, doc: Doc, fields: dict[str, str]) -> None:
    if _search is None or not hasattr(_search, "index_document"):
        return
    await _search.index_document(
        ctx, kind, doc["_id"], fields=fields, weights={"title": 3.0, "body": 1.0, "tags": 2.0}, audience="PUBLIC",
    )


async def thread(ctx: Context, doc: Doc) -> None:
    """Index a forum thread (question title, body and tags)."""
    await _index(ctx, "FORUM_THREAD", doc, {"title": doc["title"], "body": doc["body"],
                                            "tags": " ".join(doc.get("tags") or [])})


async def idea(ctx: Context, doc: Doc) -> None:
    """Index an idea (title and body)."""
    await _index(ctx, "IDEA", doc, {"title": doc["title"], "body": doc["body"], "tags": ""})
