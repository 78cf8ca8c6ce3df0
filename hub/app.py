"""The ASGI application: `/graphql` (GraphiQL, POST, graphql-transport-ws), health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from hub import auth, graphiql, metrics, ratelimit
from hub.errors import ErrorCode, HubError
from hub.runtime import Hub
from hub.settings import Settings

log = logging.getLogger("hub.app")


class HubWebSocketAdapter(ASGIWebSocketAdapter):
    """Closes with 4401 (not strawberry's 4403) when `connection_init` carries a bad token."""

    async def close(self, code: int, reason: str) -> None:
        state = self.ws.state
        if code == 4403 and getattr(state, "close_code", None):
            code, reason = state.close_code, state.close_reason
        await super().close(code, reason)


class TokenWatchdog:
    """Closes a WebSocket with 4401 when the token of its `connection_init` expires.

    Wraps the connection's ASGI receive/send: once armed with the token's `exp`, a pending
    receive that outlives it sends the close frame (4401) and hands strawberry a disconnect, so
    every operation on the connection is cleaned up; later sends are dropped.
    """

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._deadline: float | None = None
        self.closed = False

    def arm(self, exp: float | None) -> None:
        self._deadline = exp

    async def receive(self) -> Message:
        if self.closed:
            return {"type": "websocket.disconnect", "code": 4401}
        if self._deadline is None:
            return await self._receive()
        pending = asyncio.ensure_future(self._receive())
        try:
            return await asyncio.wait_for(asyncio.shield(pending), max(0.0, self._deadline - time.time()))
        except TimeoutError:
            pending.cancel()
            self.closed = True
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": 4401, "reason": "Token expired"})
            return {"type": "websocket.disconnect", "code": 4401}

    async def send(self, message: Message) -> None:
        if not self.closed:
            await self._send(message)


class HubGraphQL(GraphQL[Any, None]):
    """Strawberry's ASGI view with the hub's context and identity rules."""

    websocket_adapter_class = HubWebSocketAdapter

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with a token bar and example operations per domain (hub/graphiql.py)."""
        return HTMLResponse(graphiql.page())

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        if errors and any(
            (e.get("extensions") or {}).get("code") == "UNAUTHENTICATED" for e in errors
        ):
            response.status_code = 401
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def __init__(self, hub_ref: dict[str, Hub], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hub_ref = hub_ref

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Any:
        from resolvers.context import Context

        hub = self.hub_ref["hub"]
        identity = None
        if isinstance(request, Request):
            token = auth.bearer(request.headers.get("authorization"))
            if token:
                identity = auth.verify(token, hub.settings.jwt_secret, hub.settings.jwt_issuer)
            metrics.REQUESTS.labels("http").inc()
        client = request.client.host if request.client else ""
        # Anonymous forum front-ends name the tenant they read (public forum and ideas only).
        anonymous_http = identity is None and isinstance(request, Request)
        public_tenant = request.headers.get("x-hub-tenant") if anonymous_http else None
        return Context(hub=hub, identity=identity, request=request, client_ip=client,
                       public_tenant=public_tenant)

    async def on_ws_connect(self, context: Any) -> Any:
        hub = self.hub_ref["hub"]
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization")
        token = auth.bearer(raw) if isinstance(raw, str) else None
        try:
            if not token:
                raise HubError(ErrorCode.UNAUTHENTICATED, "Missing token")
            context.identity = auth.verify(token, hub.settings.jwt_secret, hub.settings.jwt_issuer)
            watchdog = getattr(context.request.state, "token_watchdog", None)
            if isinstance(watchdog, TokenWatchdog):
                watchdog.arm(context.identity.exp)
        except HubError as exc:
            context.request.state.close_code = 4401
            context.request.state.close_reason = exc.message[:100]
            raise ConnectionRejectionError() from exc
        return {"tenant": context.identity.tenant}


class RawSend:
    """Keeps the server's own ASGI `send` of a WebSocket in `scope["hub.raw_send"]`: the fan-out
    fast path (hub/fanout.py) writes its pre-encoded frames with it, past per-message wrappers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["hub.raw_send"] = send
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses request bodies larger than `limit` bytes with 413 (declared or streamed).

    `paths` gives other limits to exact paths (uploads to `/attachments`).
    """

    def __init__(self, app: ASGIApp, limit: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    @staticmethod
    async def _refuse(send: Send) -> None:
        body = json.dumps({"errors": [{"message": "Request body too large",
                                       "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class Unauthorized:
    """Turns an invalid bearer token on an HTTP request into 401 before GraphQL runs."""

    def __init__(self, app: ASGIApp, secret_of: Any) -> None:
        self.app = app
        self.secret_of = secret_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"authorization")
            if raw is not None:
                token = auth.bearer(raw.decode("latin-1"))
                try:
                    if token is None:
                        raise HubError(ErrorCode.UNAUTHENTICATED, "Malformed Authorization header")
                    settings: Settings = self.secret_of()
                    auth.verify(token, settings.jwt_secret, settings.jwt_issuer)
                except HubError as exc:
                    response = JSONResponse(
                        {"errors": [{"message": exc.message, "extensions": {"code": "UNAUTHENTICATED"}}]},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"},
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    """The app factory (`uvicorn --factory hub.app:create_app`)."""
    settings = settings or Settings()
    from hub import logging as hub_logging

    if not hub_logging.configured():
        hub_logging.configure(settings)  # JSON logs with request ids (hub/logging.py)
    from resolvers import attachments
    from schema import build
    from schema.fanout import FanoutTransportWS

    hub_ref: dict[str, Hub] = {}
    graphql = HubGraphQL(
        hub_ref,
        schema=hub_logging.with_operation_log(build(settings)),
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
        max_subscriptions_per_connection=settings.ws_max_operations,
        allowed_origins=settings.ws_allowed_origins,
        keep_alive=True,
        keep_alive_interval=15,
    )
    # per-user subscribe budget (schema/limits.py) and the activity fan-out fast path (schema/fanout.py)
    graphql.graphql_transport_ws_handler_class = FanoutTransportWS

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = await Hub.start(settings)
        hub_ref["hub"] = hub
        log.info("hub ready")
        try:
            yield
        finally:
            await hub.stop()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        hub = hub_ref["hub"]
        store_ok = await hub.store.ping()
        bus_ok = await hub.bus.ping()
        status = 200 if store_ok and bus_ok else 503
        return JSONResponse({"store": store_ok, "bus": bus_ok}, status_code=status)

    async def metrics_endpoint(request: Request) -> Response:
        hub = hub_ref.get("hub")
        if hub is not None:
            metrics.STORE_COMMANDS.set(hub.store.counter.commands)
            metrics.EVENTS_PUBLISHED.set(hub.events.published)
            metrics.PUBLISH_FAILURES.set(hub.events.publish_failures)
            metrics.BUS_RECONNECTS.set(hub.bus.reconnects)
            metrics.ASYNCIO_TASKS.set(len(asyncio.all_tasks()))
            fanout_hub = hub.extras.get("fanout")
            metrics.FANOUT_STREAMS.set(getattr(fanout_hub, "streams", 0))
            metrics.FANOUT_FOLLOWERS.set(getattr(fanout_hub, "followers", 0))
            metrics.FANOUT_BACKLOG.set(getattr(fanout_hub, "backlog", 0))
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def ws_graphql(websocket: WebSocket) -> None:
        metrics.WS_CONNECTIONS.inc()
        watchdog = TokenWatchdog(websocket.receive, websocket.send)
        websocket.state.token_watchdog = watchdog
        try:
            await graphql(websocket.scope, watchdog.receive, watchdog.send)
        finally:
            metrics.WS_CONNECTIONS.dec()

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", ws_graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/attachments", attachments.upload_endpoint, methods=["POST"]),
            Route("/attachments/{id}", attachments.download_endpoint, methods=["GET"]),
            *graphiql.dev_routes(settings),  # /widget/ and /forum/ outside production
        ],
        lifespan=lifespan,
    )
    app.state.hub_ref = hub_ref
    app.add_middleware(Unauthorized, secret_of=lambda: settings)
    app.add_middleware(ratelimit.RateLimitMiddleware, hub_of=lambda: hub_ref.get("hub"), settings=settings)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, paths={
        "/attachments": settings.max_upload_bytes + attachments.MULTIPART_SLACK})
    app.add_middleware(hub_logging.RequestContext)  # outermost: request ids on every response
    app.add_middleware(RawSend)  # (only stashes the server's WebSocket send for the fan-out path)
    return app
