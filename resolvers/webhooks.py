"""Webhooks for integrators: subscriptions to event kinds, the delivery log, redelivery.

A webhook (`webhooks`) names a URL and kind patterns (`case.*`, `article.rated`, `*`). Every event
emitted in its tenant whose kind matches becomes a `webhook_deliveries` document in the emitting
transaction (an `activity.on_emit` hook), so no committed event is ever missed; `hub.webhooks`
sends them. Only supervisors and admins of the tenant manage webhooks or read their deliveries.
The signing secret is shown once (on create, and when rotated). See `docs/webhooks.md`.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from hub import metrics
from hub.errors import conflict, forbidden, invalid, not_found
from hub.events import Event, Visibility
from hub.store import Doc, new_id, register_indexes
from hub.webhooks import DELIVERED, FAILED, PENDING, UnsafeURL, allow_private, check_url
from resolvers import activity
from resolvers.context import Context
from resolvers.pagination import Page, paginate

register_indexes(
    "webhooks",
    IndexModel([("tenant", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)]),
    IndexModel([("tenant", ASCENDING), ("active", ASCENDING)]),
)
register_indexes(
    "webhook_deliveries",
    IndexModel([("tenant", ASCENDING), ("webhookId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)]),
    IndexModel([
        ("tenant", ASCENDING), ("webhookId", ASCENDING), ("status", ASCENDING), ("createdAt", DESCENDING),
        ("_id", DESCENDING),
    ]),
)

MAX_WEBHOOKS = 20
"""Webhooks per tenant."""
MAX_KINDS, MAX_URL, MAX_DESCRIPTION, MAX_ATTEMPTS = 20, 2000, 500, 20
_KIND = re.compile(r"^[a-z*?][a-z0-9_.*?-]{0,99}$")
STATUSES = (PENDING, "SENDING", DELIVERED, FAILED)


def stream(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


def matches(patterns: list[str], kind: str) -> bool:
    """Whether an event kind is selected by a webhook's patterns (shell globs, case-sensitive)."""
    return any(fnmatchcase(kind, p) for p in patterns)


def _manager(ctx: Context) -> None:
    if not ctx.me.has("supervisor"):
        raise forbidden("Only supervisors and admins manage webhooks")


def _secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# -- the emit hook --------------------------------------------------------------------------------


def payload(event: Event) -> dict[str, Any]:
    """The `event` object of a delivery body."""
    return {
        "id": event.id, "kind": event.kind, "stream": event.stream, "seq": event.seq,
        "cursor": event.cursor, "visibility": event.visibility.value, "summary": event.summary,
        "occurredAt": event.occurred_at.isoformat(),
        "actor": {"id": event.actor_id, "name": event.actor_name}, "data": event.data,
    }


def _body(delivery_id: str, webhook_id: str, tenant: str, event: dict[str, Any]) -> str:
    return json.dumps({"deliveryId": delivery_id, "webhookId": webhook_id, "tenant": tenant, "event": event},
                      separators=(",", ":"), default=str)


def _delivery(ctx: Context, hook: Doc, event: dict[str, Any], redelivery_of: str | None = None) -> Doc:
    webhook_id = hook["_id"]
    now = datetime.now(UTC)
    delivery_id = new_id("whd")
    return {
        "_id": delivery_id, "webhookId": webhook_id, "eventId": event["id"], "kind": event["kind"],
        "event": event, "body": _body(delivery_id, webhook_id, ctx.me.tenant, event),
        "status": PENDING, "attempts": 0,
        "maxAttempts": hook.get("maxAttempts") or ctx.hub.settings.webhook_max_attempts,
        "dueAt": now, "createdAt": now, "updatedAt": now, "attemptLog": [], "redeliveryOf": redelivery_of,
    }


async def _enqueue(ctx: Context, event: Event) -> None:
    """Queue a delivery of `event` to every active webhook of its tenant whose patterns match."""
    if event.tenant != ctx.me.tenant:
        return
    hooks = await ctx.db["webhooks"].find({"active": True}, projection={"kinds": 1, "maxAttempts": 1})
    body = None
    for hook in hooks:
        if matches(hook.get("kinds") or [], event.kind):
            body = body or payload(event)
            await ctx.db["webhook_deliveries"].insert(_delivery(ctx, hook, body))
            metrics.WEBHOOK_QUEUED.inc()


activity.on_emit(_enqueue)


async def _can_read_stream(ctx: Context, webhook_id: str) -> bool:
    return ctx.me.has("supervisor") and await ctx.loader("webhooks").load(webhook_id) is not None


activity.register_stream("webhook", _can_read_stream)


# -- reads ----------------------------------------------------------------------------------------


async def list_webhooks(ctx: Context, first: int | None, after: str | None) -> Page:
    _manager(ctx)
    return await paginate(ctx.db["webhooks"], {}, sort_key="createdAt", first=first, after=after)


async def get(ctx: Context, webhook_id: str) -> Doc | None:
    """A webhook of the caller's tenant; `None` for anyone but supervisors and admins."""
    if not ctx.me.has("supervisor"):
        return None
    return await ctx.loader("webhooks").load(webhook_id)


async def deliveries(
    ctx: Context, webhook_id: str, status: str | None, first: int | None, after: str | None
) -> Page:
    """The delivery log of one webhook, newest first (optionally of one status)."""
    _manager(ctx)
    if await get(ctx, webhook_id) is None:
        raise not_found("Webhook", "webhookId")
    query: dict[str, Any] = {"webhookId": webhook_id}
    if status:
        query["status"] = status
    return await paginate(ctx.db["webhook_deliveries"], query, sort_key="createdAt", first=first, after=after)


# -- writes ---------------------------------------------------------------------------------------


def _kinds(value: Any) -> list[str]:
    kinds = list(dict.fromkeys(k.strip() for k in value or []))
    if not kinds:
        raise invalid("Name at least one event kind pattern, e.g. `case.*` or `*`", "kinds")
    if len(kinds) > MAX_KINDS:
        raise invalid(f"At most {MAX_KINDS} kind patterns", "kinds")
    bad = [k for k in kinds if not _KIND.match(k)]
    if bad:
        raise invalid(f"Invalid kind patterns: {', '.join(bad)} (use e.g. `case.*`, `comment.added`)", "kinds")
    return kinds


async def _url(ctx: Context, value: Any) -> str:
    url = str(value or "").strip()
    if not url or len(url) > MAX_URL:
        raise invalid(f"Give a URL of at most {MAX_URL} characters", "url")
    try:
        await check_url(url, allow_private(ctx.hub.settings))
    except UnsafeURL as exc:
        raise invalid(str(exc), "url") from exc
    return url


def _description(value: Any) -> str:
    text = str(value or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise invalid(f"At most {MAX_DESCRIPTION} characters", "description")
    return text


def _max_attempts(value: Any) -> int | None:
    if value is None:
        return None
    if not 1 <= int(value) <= MAX_ATTEMPTS:
        raise invalid(f"Between 1 and {MAX_ATTEMPTS} attempts", "maxAttempts")
    return int(value)


def _summary_data(doc: Doc, **extra: Any) -> dict[str, Any]:
    """Event data of a webhook change: never the secret, nor the full URL (it may carry a token)."""
    from urllib.parse import urlsplit

    return {"webhookId": doc["_id"], "host": urlsplit(doc["url"]).hostname, "kinds": doc["kinds"],
            "active": doc["active"], **extra}


async def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Register a webhook; the payload carries its signing secret (shown only here)."""
    _manager(ctx)
    me = ctx.me
    url = await _url(ctx, data.get("url"))
    kinds = _kinds(data.get("kinds"))
    description = _description(data.get("description"))
    max_attempts = _max_attempts(data.get("max_attempts"))
    now = datetime.now(UTC)
    doc: Doc = {
        "_id": new_id("whk"), "url": url, "kinds": kinds, "description": description,
        "active": data.get("active") is not False, "secret": _secret(), "createdBy": me.sub,
        "createdAt": now, "updatedAt": now, "version": 1, "maxAttempts": max_attempts,
    }

    async def write() -> Doc:
        if await ctx.db["webhooks"].count({}) >= MAX_WEBHOOKS:
            raise invalid(f"At most {MAX_WEBHOOKS} webhooks per tenant", "url")
        stored = await ctx.db["webhooks"].insert(doc)
        await activity.emit(ctx, stream(doc["_id"]), "webhook.created", f"Webhook to {_summary_data(doc)['host']}",
                            _summary_data(doc), visibility=Visibility.INTERNAL)
        return stored

    stored = await ctx.events.write(write)
    return {"webhook": stored, "secret": stored["secret"]}


async def update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Change a webhook's URL, kinds, description or `active`; `rotateSecret` issues a new secret."""
    _manager(ctx)
    webhook_id = data.get("webhook_id") or ""
    changes: dict[str, Any] = {}
    if data.get("url") is not None:
        changes["url"] = await _url(ctx, data["url"])
    if data.get("kinds") is not None:
        changes["kinds"] = _kinds(data["kinds"])
    if data.get("description") is not None:
        changes["description"] = _description(data["description"])
    if data.get("active") is not None:
        changes["active"] = bool(data["active"])
    if data.get("max_attempts") is not None:
        changes["maxAttempts"] = _max_attempts(data["max_attempts"])
    rotate = bool(data.get("rotate_secret"))

    async def write() -> Doc:
        doc = await ctx.db["webhooks"].find_one({"_id": webhook_id})
        if doc is None:
            raise not_found("Webhook", "webhookId")
        expected = data.get("expected_version")
        if expected is not None and expected != doc["version"]:
            raise conflict("The webhook changed since you read it", "expectedVersion")
        changed = {k: v for k, v in changes.items() if doc.get(k) != v}
        if rotate:
            changed["secret"] = _secret()
        if not changed:
            return doc
        now = datetime.now(UTC)
        updated = await ctx.db["webhooks"].find_one_and_update(
            {"_id": webhook_id}, {"$set": {**changed, "updatedAt": now}, "$inc": {"version": 1}}
        )
        assert updated is not None
        fields = sorted("secret" if k == "secret" else k for k in changed)
        await activity.emit(ctx, stream(webhook_id), "webhook.updated", "Webhook updated",
                            _summary_data(updated, fields=fields), visibility=Visibility.INTERNAL)
        return updated

    doc = await ctx.events.write(write)
    return {"webhook": doc, "secret": doc["secret"] if rotate else None}


async def delete(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Remove a webhook and its delivery log (queued deliveries are dropped)."""
    _manager(ctx)
    webhook_id = data.get("webhook_id") or ""

    async def write() -> str:
        doc = await ctx.db["webhooks"].find_one({"_id": webhook_id})
        if doc is None:
            raise not_found("Webhook", "webhookId")
        await ctx.db["webhooks"].delete_one({"_id": webhook_id})
        await ctx.db["webhook_deliveries"].delete_many({"webhookId": webhook_id})
        await activity.emit(ctx, stream(webhook_id), "webhook.deleted", "Webhook deleted",
                            _summary_data(doc), visibility=Visibility.INTERNAL)
        return webhook_id

    return {"deleted_webhook_id": await ctx.events.write(write)}


async def redeliver(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Queue the event of a finished delivery again, as a new delivery (`redeliveryOf` the old one)."""
    _manager(ctx)
    delivery_id = data.get("delivery_id") or ""

    async def write() -> Doc:
        old = await ctx.db["webhook_deliveries"].find_one({"_id": delivery_id})
        if old is None:
            raise not_found("Delivery", "deliveryId")
        if old["status"] not in (DELIVERED, FAILED):
            raise conflict("This delivery is still queued", "deliveryId")
        hook = await ctx.db["webhooks"].find_one({"_id": old["webhookId"]}, projection={"maxAttempts": 1})
        if hook is None:
            raise not_found("Webhook", "deliveryId")
        doc = await ctx.db["webhook_deliveries"].insert(_delivery(ctx, hook, old["event"], delivery_id))
        await activity.emit(ctx, stream(old["webhookId"]), "webhook.redelivery_requested",
                            f"Redelivery of {old['kind']}",
                            {"webhookId": old["webhookId"], "deliveryId": doc["_id"], "redeliveryOf": delivery_id,
                             "eventId": old["eventId"]}, visibility=Visibility.INTERNAL)
        return doc

    doc = await ctx.events.write(write)
    metrics.WEBHOOK_QUEUED.inc()
    worker = ctx.hub.extras.get("webhooks")
    if worker is not None and hasattr(worker, "wake"):
        worker.wake()
    return {"delivery": doc}
