"""Webhook delivery: the worker every hub process runs, request signing, retries, the SSRF guard.

Deliveries are `webhook_deliveries` documents written by `resolvers.webhooks` in the transaction
of the event they carry (`status: PENDING`, `dueAt`). Any process's worker claims a due one
atomically (`find_one_and_update` PENDING → SENDING, `dueAt` pushed out by a lease, so a process
that dies mid-send only delays it), POSTs its stored body signed with the webhook's secret, and
records the attempt: DELIVERED on 2xx, otherwise PENDING again after an exponential backoff with
jitter, or FAILED after `webhook_max_attempts`. See `docs/webhooks.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pymongo import ASCENDING, IndexModel, ReturnDocument

from hub import metrics
from hub.settings import Settings
from hub.store import Doc, Store, background_job, register_indexes

log = logging.getLogger("hub.webhooks")

# The worker's queue: only PENDING/SENDING deliveries carry `dueAt` (cross-tenant runtime job,
# like the outbox relay's index on `events`).
register_indexes("webhook_deliveries", IndexModel([("dueAt", ASCENDING)], sparse=True))

PENDING, SENDING, DELIVERED, FAILED = "PENDING", "SENDING", "DELIVERED", "FAILED"
USER_AGENT = "CollabHub-Webhooks/1"
MAX_EXCERPT = 500
"""Characters of a response body (or error) kept in the delivery log."""


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): base·2^(n-1), capped, with jitter
    drawn from its upper half (so retries of many deliveries spread out but never come early)."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def allow_private(settings: Settings) -> bool:
    if settings.webhook_allow_private is not None:
        return settings.webhook_allow_private
    return not settings.production


class UnsafeURL(ValueError):
    """A webhook URL the hub refuses to call (bad scheme, or resolves to a private address)."""


def check_syntax(url: str) -> tuple[str, int]:
    """`(host, port)` of an `http(s)://` URL without credentials; `UnsafeURL` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("Use an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise UnsafeURL("Credentials in the URL are not allowed; put a token in the path or query")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("Invalid port") from exc
    return parts.hostname, port


async def check_url(url: str, allow_private_hosts: bool) -> None:
    """Refuse URLs that are malformed or (unless allowed) resolve to a non-public address.

    Every address the name resolves to must be globally routable: loopback, private (RFC 1918,
    ULA), link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified
    addresses are refused, so a tenant admin cannot make the hub call into its own network.
    """
    host, port = check_syntax(url)
    if allow_private_hosts:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeURL(f"Cannot resolve {host}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise UnsafeURL(f"{host} resolves to a non-public address ({address})")


class WebhookWorker:
    """Claims due deliveries of every tenant and sends them; one per hub process."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    @property
    def deliveries(self) -> Any:
        return self.store.raw("webhook_deliveries")

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.webhook_timeout_s), follow_redirects=False,
            headers={"User-Agent": USER_AGENT}, trust_env=False,
        )
        self._task = asyncio.create_task(self._loop())

    def wake(self) -> None:
        """Look for due deliveries now (called after a commit that queued some)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        background_job()
        while True:
            try:
                await self.run_once()
            except Exception:  # keep the worker alive through store outages
                log.warning("webhook worker pass failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_s)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim and start sending every due delivery (up to the concurrency limit); returns how many."""
        started = 0
        while len(self._inflight) < self.settings.webhook_concurrency:
            doc = await self.claim()
            if doc is None:
                break
            task = asyncio.create_task(self.send(doc))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            started += 1
        return started

    async def claim(self) -> Doc | None:
        """Atomically take one due delivery: PENDING (or SENDING past its lease) → SENDING."""
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self.settings.webhook_lease_s)
        doc: Doc | None = await self.deliveries.find_one_and_update(
            {"dueAt": {"$lte": now}, "status": {"$in": [PENDING, SENDING]}},
            {"$set": {"status": SENDING, "dueAt": lease, "claim": uuid.uuid4().hex,
                      "owner": self.owner, "updatedAt": now},
             "$inc": {"attempts": 1}},
            sort=[("dueAt", ASCENDING)], return_document=ReturnDocument.AFTER,
        )
        return doc

    async def send(self, doc: Doc) -> None:
        """POST one claimed delivery and record the outcome (conditional on still holding the claim)."""
        assert self._client is not None
        webhook = await self.store.raw("webhooks").find_one({"_id": doc["webhookId"], "tenant": doc["tenant"]})
        attempt = int(doc["attempts"])
        started = time.perf_counter()
        code: int | None = None
        excerpt = ""
        error: str | None = None
        if webhook is None:
            error = "webhook deleted"
        else:
            body = doc["body"].encode()
            try:
                await check_url(webhook["url"], allow_private(self.settings))
                response = await self._client.post(webhook["url"], content=body, headers={
                    "Content-Type": "application/json",
                    "X-Hub-Event": doc["kind"],
                    "X-Hub-Delivery": doc["_id"],
                    "X-Hub-Attempt": str(attempt),
                    "X-Hub-Signature-256": sign(webhook["secret"], body),
                })
                code = response.status_code
                excerpt = response.text[:MAX_EXCERPT]
                if not 200 <= code < 300:
                    error = f"HTTP {code}"
            except UnsafeURL as exc:
                error = f"refused: {exc}"
            except httpx.TimeoutException:
                error = f"timeout after {self.settings.webhook_timeout_s:g}s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:MAX_EXCERPT]
        latency = time.perf_counter() - started
        await self.record(doc, attempt, code, latency, error, excerpt, final=webhook is None)

    async def record(
        self, doc: Doc, attempt: int, code: int | None, latency: float, error: str | None,
        excerpt: str, *, final: bool = False,
    ) -> None:
        now = datetime.now(UTC)
        entry = {"attempt": attempt, "at": now, "responseCode": code,
                 "latencyMs": round(latency * 1000, 1), "error": error}
        update: dict[str, Any] = {
            "$set": {"responseCode": code, "latencyMs": entry["latencyMs"], "error": error,
                     "responseBody": excerpt, "updatedAt": now, "lastAttemptAt": now},
            "$push": {"attemptLog": entry},
            "$unset": {"claim": "", "owner": ""},
        }
        if error is None:
            outcome = "delivered"
            update["$set"].update(status=DELIVERED, deliveredAt=now)
            update["$unset"]["dueAt"] = ""
        elif final or attempt >= int(doc.get("maxAttempts") or self.settings.webhook_max_attempts):
            outcome = "failed"
            update["$set"]["status"] = FAILED
            update["$unset"]["dueAt"] = ""
        else:
            outcome = "retry"
            delay = backoff(attempt, self.settings.webhook_retry_base_s, self.settings.webhook_retry_max_s)
            update["$set"].update(status=PENDING, dueAt=now + timedelta(seconds=delay))
        metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()
        if code is not None:
            metrics.WEBHOOK_LATENCY.observe(latency)
        result = await self.deliveries.update_one({"_id": doc["_id"], "claim": doc["claim"]}, update)
        if result.matched_count == 0:
            log.warning("webhook delivery %s: claim lost before its outcome was recorded", doc["_id"])
        else:
            log.info("webhook delivery %s attempt %d: %s", doc["_id"], attempt, error or f"HTTP {code}",
                     extra={"tenant": doc["tenant"], "webhook_id": doc["webhookId"], "outcome": outcome})
