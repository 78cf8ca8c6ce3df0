"""Rate limits: per user (token `sub`) or per client IP, shared across processes through Redis.

Built on the `limits` library's sliding-window-counter strategy (O(1) per key, two Redis
keys per limit). With `HUB_REDIS_URL` set the counters live in Redis, so every hub process
draws from one budget; without it they live in process memory.

Redis is never a reason to refuse service: when it is down or slow (each call is bounded by
`TIMEOUT_S`), the limiter falls back to a process-local in-memory limiter for
`FALLBACK_S` seconds and then tries Redis again.

Entry points:

* :class:`RateLimitMiddleware` limits HTTP requests to `/graphql` and `/attachments`
  (`HUB_RATE_LIMIT_PER_MIN` per user, `HUB_RATE_LIMIT_ANON_PER_MIN` per IP; a batch counts
  one per operation) with `429`, `Retry-After` and `extensions.code = RATE_LIMITED`.
* :func:`hit` lets a resolver enforce a per-operation budget
  (`await ratelimit.hit(ctx.hub, f"forum:{ip}", 5, 3600)`), raising :class:`RateLimited`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import auth
from hub.errors import ErrorCode, HubError
from hub.settings import Settings

log = logging.getLogger("hub.ratelimit")

TIMEOUT_S = 0.25
"""Longest a Redis round-trip may take before the limiter falls back to memory."""
FALLBACK_S = 5.0
"""How long to stay on the in-memory limiter after a Redis failure."""
LIMITED_PATHS = frozenset({"/graphql", "/attachments"})


class RateLimited(HubError):
    """`RATE_LIMITED` with a retry hint (seconds) for the client."""

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message or f"Too many requests: retry in {retry_after} s")
        self.retry_after = retry_after


class RateLimiter:
    """Named budgets (`key`, `limit` per `per_seconds`) in Redis, or memory when it is unavailable."""

    def __init__(self, redis_url: str | None) -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", wrap_exceptions=True,
                key_prefix="hub:rl", socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
            )
            self._redis = SlidingWindowCounterRateLimiter(storage)
        self._redis_down_until = 0.0
        self.fallbacks = 0

    @property
    def shared(self) -> bool:
        """True while the counters are shared across processes (Redis reachable)."""
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    async def acquire(self, key: str, limit: int, per_seconds: int, cost: int = 1) -> int | None:
        """Spend `cost` from the budget `key`; `None` if allowed, else seconds until it is."""
        item = RateLimitItemPerSecond(limit, per_seconds)
        if self.shared and self._redis is not None:
            try:
                return await asyncio.wait_for(self._acquire(self._redis, item, key, cost), TIMEOUT_S * 2)
            except Exception as exc:  # any Redis failure: fail over, never fail the request
                self._redis_down_until = time.monotonic() + FALLBACK_S
                self.fallbacks += 1
                log.warning("rate limiter: Redis unavailable (%s); in-memory for %.0f s", exc, FALLBACK_S)
        return await self._acquire(self._memory, item, key, cost)

    @staticmethod
    async def _acquire(
        limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, key: str, cost: int
    ) -> int | None:
        if await limiter.hit(item, key, cost=cost):
            return None
        stats = await limiter.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def limiter_of(hub: Any) -> RateLimiter:
    """The process's limiter, created on first use (on the serving event loop) and kept on the hub."""
    extras: dict[str, object] = hub.extras
    found = extras.get("ratelimiter")
    if not isinstance(found, RateLimiter):
        found = RateLimiter(hub.settings.redis_url)
        extras["ratelimiter"] = found
    return found


async def hit(hub: Any, key: str, limit: int, per_seconds: int, cost: int = 1) -> None:
    """Spend from the budget `key` (`limit` per `per_seconds`); raises :class:`RateLimited` when spent.

    Keys are global: include the tenant and user (or IP) in them, e.g. `forum:{tenant}:{ip}`.
    """
    retry = await limiter_of(hub).acquire(key, limit, per_seconds, cost)
    if retry is not None:
        raise RateLimited(retry)


def caller_key(identity: auth.Identity | None, client_ip: str) -> str:
    """The budget of a caller: the user for a valid token, else the client IP."""
    if identity is not None:
        return f"user:{identity.tenant}:{identity.sub}"
    return f"ip:{client_ip or 'unknown'}"


def _operations(body: bytes, cap: int) -> int:
    """How many operations a POST body carries (a JSON array is a batch), at most `cap`."""
    if not body.lstrip().startswith(b"["):
        return 1
    try:
        data = json.loads(body)
    except ValueError:
        return 1
    return max(1, min(len(data), cap)) if isinstance(data, list) else 1


class RateLimitMiddleware:
    """Limits HTTP requests to the API per user (valid bearer token) or per client IP.

    `hub_of()` returns the running `Hub` (or `None` before the lifespan started).
    """

    def __init__(self, app: ASGIApp, hub_of: Callable[[], Any], settings: Settings) -> None:
        self.app = app
        self.hub_of = hub_of
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub_of()
        if scope["type"] != "http" or scope.get("path") not in LIMITED_PATHS or hub is None:
            await self.app(scope, receive, send)
            return
        identity = self._identity(scope)
        cost, receive = await self._cost(scope, receive)
        client = scope.get("client")
        key = caller_key(identity, client[0] if client else "")
        limit = self.settings.rate_limit_per_min if identity else self.settings.rate_limit_anon_per_min
        retry = await limiter_of(hub).acquire(key, limit, 60, cost)
        if retry is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"errors": [{
            "message": f"Too many requests: retry in {retry} s",
            "extensions": {"code": "RATE_LIMITED", "retryAfter": retry},
        }]}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", str(retry).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _identity(self, scope: Scope) -> auth.Identity | None:
        raw = dict(scope.get("headers") or []).get(b"authorization")
        token = auth.bearer(raw.decode("latin-1")) if raw else None
        if not token:
            return None
        try:
            return auth.verify(token, self.settings.jwt_secret, self.settings.jwt_issuer)
        except HubError:
            return None

    async def _cost(self, scope: Scope, receive: Receive) -> tuple[int, Receive]:
        """Operations in a JSON POST (reads the body once and replays it downstream)."""
        headers = dict(scope.get("headers") or [])
        if scope.get("method") != "POST" or b"json" not in headers.get(b"content-type", b""):
            return 1, receive
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return _operations(body, self.settings.max_batch + 1), replay
