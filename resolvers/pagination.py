"""Keyset pagination for Relay connections: opaque cursors over (sort key, `_id`)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.errors import invalid
from hub.store import Doc, TenantCollection

MAX_PAGE = 100


@dataclass
class Page:
    items: list[Doc]
    cursors: list[str]
    has_next: bool

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


def _encode(value: Any, doc_id: str) -> str:
    if isinstance(value, datetime):
        value = {"$dt": value.isoformat()}
    raw = json.dumps([value, doc_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, doc_id = json.loads(raw)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise invalid("Malformed cursor", "after") from exc
    if isinstance(value, dict) and "$dt" in value:
        value = datetime.fromisoformat(value["$dt"])
    if not isinstance(doc_id, str):
        raise invalid("Malformed cursor", "after")
    return value, doc_id


def clamp(first: int | None, default: int = 20) -> int:
    if first is None:
        return default
    if first < 0:
        raise invalid("`first` must not be negative", "first")
    return min(first, MAX_PAGE)


async def paginate(
    coll: TenantCollection,
    filter: dict[str, Any],
    *,
    sort_key: str = "_id",
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
) -> Page:
    """One page of `coll` matching `filter`, ordered by `sort_key` then `_id`."""
    limit = clamp(first)
    query = dict(filter)
    direction = -1 if descending else 1
    if after:
        value, doc_id = _decode(after)
        op = "$lt" if descending else "$gt"
        if sort_key == "_id":
            query["_id"] = {**query.get("_id", {}), op: doc_id} if isinstance(query.get("_id"), dict) else {op: doc_id}
        else:
            keyset = {"$or": [{sort_key: {op: value}}, {sort_key: value, "_id": {op: doc_id}}]}
            query = {"$and": [query, keyset]} if query else keyset
    sort = [(sort_key, direction)] if sort_key == "_id" else [(sort_key, direction), ("_id", direction)]
    docs = await coll.find(query, sort=sort, limit=limit + 1) if limit else []
    has_next = len(docs) > limit
    items = docs[:limit]
    cursors = [_encode(d.get(sort_key) if sort_key != "_id" else d["_id"], d["_id"]) for d in items]
    return Page(items=items, cursors=cursors, has_next=has_next)
