"""Structured JSON logs with a request id on every line of a request.

- :func:`configure` installs one handler on the root logger: one JSON object per line
  (`ts level logger msg`, the request fields below, any `extra=` fields, `exc` for tracebacks), or
  plain text with `HUB_LOG_FORMAT=text`. The hub's level is `HUB_LOG_LEVEL`; uvicorn's own loggers
  keep the level of `collabhub serve --log-level`.
- :class:`RequestContext` (outermost ASGI middleware) takes the request id from `X-Request-Id`
  (or makes one), returns it in the `X-Request-Id` response header (also on the WebSocket
  handshake), puts it in a context variable so every line logged while serving the request carries
  it, and writes one access line per HTTP request (`hub.access`: method, path, status, duration).
- :class:`OperationLog` (a strawberry extension added by the app factory) adds the GraphQL
  operation's name and type, the tenant and the user to the request's fields, and counts
  operations by type on `/metrics`.
See `docs/operations.md`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from hub import metrics
from hub.settings import Settings

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("hub_log_fields", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: their access lines are DEBUG, not INFO."""
access = logging.getLogger("hub.access")


def current() -> dict[str, Any]:
    """The fields of the request being served (empty outside a request)."""
    return dict(_fields.get() or {})


def request_id() -> str | None:
    value = (_fields.get() or {}).get("request_id")
    return str(value) if value else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request fields and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_fields.get() or {})
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Plain text for humans at a terminal, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = request_id()
        return f"{text} [{rid}]" if rid else text


class _HubHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler :func:`configure` installed (so configuring twice changes nothing)."""


def configure(settings: Settings | None = None, uvicorn_level: str | None = None) -> None:
    """Send every log record to stderr as JSON (or text); idempotent."""
    settings = settings or Settings()
    root = logging.getLogger()
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    for handler in list(root.handlers):
        if type(handler) in (logging.StreamHandler, _HubHandler):  # basicConfig's, or ours
            root.removeHandler(handler)
    handler = _HubHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    level = logging.getLevelName(settings.log_level.upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        if uvicorn_level:
            logger.setLevel(uvicorn_level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # `hub.access` logs every request instead
    for noisy in ("pymongo", "httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


def configured() -> bool:
    return any(isinstance(h, _HubHandler) for h in logging.getLogger().handlers)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestContext:
    """Request ids, per-request log fields, access lines and HTTP metrics (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _request_id(list(scope.get("headers") or []))
        fields: dict[str, Any] = {"request_id": rid, "transport": "ws" if scope["type"] == "websocket" else "http"}
        token = _fields.set(fields)
        header = (b"x-request-id", rid.encode())
        try:
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send, header)
            else:
                await self._http(scope, receive, send, header, fields)
        finally:
            _fields.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes],
                    fields: dict[str, Any]) -> None:
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method, path = scope.get("method", ""), scope.get("path", "")
            metrics.HTTP_REQUESTS.labels(method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method).observe(elapsed)
            level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
            # `fields` may have gained the operation, tenant and user while GraphQL ran
            token = _fields.set(fields)
            access.log(level, "%s %s %d", method, path, status, extra={
                "method": method, "path": path, "status": status, "duration_ms": round(elapsed * 1000, 2),
            })
            _fields.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes]) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        started = time.perf_counter()
        access.info("websocket open %s", scope.get("path", ""), extra={"path": scope.get("path", "")})
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access.info("websocket closed after %.1fs", time.perf_counter() - started)


class OperationLog(SchemaExtension):
    """Adds the operation name/type, tenant and user to the request's log fields; counts operations."""

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        try:
            op_type = ec.operation_type.value
        except Exception:  # no valid operation: validation reports it
            op_type = "unknown"
        name = ec.operation_name or "anonymous"
        identity = getattr(ec.context, "identity", None)
        extra: dict[str, Any] = {"operation": name, "operation_type": op_type}
        if identity is not None:
            extra.update(tenant=identity.tenant, user=identity.sub)
        fields = _fields.get()
        token = None
        if fields is not None and fields.get("transport") == "http" and "operation" not in fields:
            fields.update(extra)  # an HTTP request: its access line names the operation too
        else:
            # a WebSocket operation (its own task), or the next operation of an HTTP batch
            token = _fields.set({**(fields or {}), **extra})
        metrics.OPERATIONS.labels(op_type).inc()
        try:
            yield
        finally:
            if token is not None:
                with contextlib.suppress(ValueError):  # closed from another context
                    _fields.reset(token)


def with_operation_log(schema: Any) -> Any:
    """`schema` with :class:`OperationLog` added to its extensions (the app factory's schema)."""
    schema.extensions = (*schema.extensions, OperationLog)
    return schema
