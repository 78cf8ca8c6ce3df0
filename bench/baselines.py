"""The servers the hub is measured against, each started by the harness as its own process.

* `raw` — the physical ceiling: the `websockets` library's own asyncio server (no ASGI) speaking
  just enough graphql-transport-ws; every event from Redis is wrapped into a `next` frame and
  framed once, and the same bytes are written to every socket's transport (one `write` each).
* `raw-broadcast` — the same server pushing each frame with `websockets.broadcast()` (which frames
  it once per socket): the ceiling as the library offers it.
* `raw-asgi` — the same through uvicorn's ASGI WebSocket (`websockets-sansio`, no compression):
  the ceiling of any ASGI app on this stack, one `await send(...)` per socket.
* `naive` — naive Strawberry: a minimal schema whose subscription reads a broadcaster-backed bus
  (`hub.bus.Bus` on Redis) and yields per subscriber, so strawberry executes and encodes per
  subscriber (what the hub did before the fan-out path).
* `bare` — the query-path ceiling: a bare Starlette endpoint doing the store reads of `case` with
  20 comments and authors, and of `cases(first: 50)`, returning the same JSON as the hub.

`python -m bench.baselines KIND --port P --redis URL [--mongo URL --db NAME]`
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from typing import Any

CHANNEL = "bench|events"
"""The Redis channel the harness publishes baseline events on (JSON of an ActivityEvent)."""


def frame(op_id: str, event: bytes | str) -> str:
    raw = event.decode() if isinstance(event, bytes) else event
    return '{"id":' + json.dumps(op_id) + ',"type":"next","payload":{"data":{"caseActivity":' + raw + "}}}"


# -- raw: pre-framed bytes on every transport; raw-broadcast: websockets.broadcast ------------------

async def raw(port: int, redis_url: str, *, library_broadcast: bool = False) -> None:
    from redis.asyncio import Redis
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.typing import Subprotocol

    by_id: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        op: str | None = None
        try:
            async for message in ws:
                kind = json.loads(message)
                if kind["type"] == "connection_init":
                    await ws.send('{"type":"connection_ack"}')
                elif kind["type"] == "subscribe":
                    op = kind["id"]
                    by_id.setdefault(op, set()).add(ws)
                elif kind["type"] == "ping":
                    await ws.send('{"type":"pong"}')
        finally:
            if op is not None:
                by_id.get(op, set()).discard(ws)

    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    async with serve(handler, "127.0.0.1", port, subprotocols=[Subprotocol("graphql-transport-ws")],
                     compression=None, max_size=None, ping_interval=None, backlog=4096):
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            for op, conns in by_id.items():
                text = frame(op, message["data"])
                if library_broadcast:
                    broadcast(conns, text)
                    continue
                wire = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
                for ws in conns:
                    if ws.protocol.state is State.OPEN and not ws.transport.is_closing():
                        ws.transport.write(wire)


# -- raw-asgi: uvicorn, one await send per socket ----------------------------------------------------

class RawASGI:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.sends: dict[Any, str] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    asyncio.get_running_loop().create_task(self.listen())
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                kind = json.loads(message.get("text") or message.get("bytes"))
                if kind["type"] == "connection_init":
                    await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                elif kind["type"] == "subscribe":
                    self.sends[send] = kind["id"]
        finally:
            self.sends.pop(send, None)

    async def listen(self) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(self.redis_url)  # keep the client: its pool owns the connection
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            frames: dict[str, str] = {}
            for send, op in list(self.sends.items()):
                text = frames.get(op) or frames.setdefault(op, frame(op, message["data"]))
                try:
                    await send({"type": "websocket.send", "text": text})
                except Exception:
                    self.sends.pop(send, None)


# -- naive strawberry ------------------------------------------------------------------------------

def naive_app(redis_url: str) -> Any:
    """Strawberry's own ASGI app on `bench.naive_schema`; the subscription executes per subscriber."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from strawberry.asgi import GraphQL
    from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

    from bench import naive_schema
    from hub.bus import Bus

    bus = naive_schema.bus = Bus(redis_url)
    graphql = GraphQL(naive_schema.schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await bus.connect()
        yield
        await bus.disconnect()

    return Starlette(routes=[WebSocketRoute("/graphql", graphql)], lifespan=lifespan)


# -- bare starlette query endpoint -----------------------------------------------------------------

def _cursor(value: Any, doc_id: str) -> str:
    raw = json.dumps([{"$dt": value.isoformat()}, doc_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def bare_app(mongo_url: str, db: str) -> Any:
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from hub import auth
    from hub.settings import Settings
    from hub.store import Store

    settings = Settings()
    state: dict[str, Store] = {}

    def identity(request: Request) -> auth.Identity:
        token = auth.bearer(request.headers.get("authorization")) or ""
        return auth.verify(token, settings.jwt_secret, settings.jwt_issuer)

    async def case(request: Request) -> Response:
        me = identity(request)
        tdb = state["store"].tenant(me.tenant)
        found = await tdb["cases"].find_one({"_id": request.query_params["id"]})
        if found is None:
            return JSONResponse({"data": {"case": None}})
        comments = await tdb["comments"].find({"subjectId": found["_id"]}, sort=[("_id", 1)], limit=21)
        authors = {u["uid"]: u for u in await tdb["users"].find(
            {"uid": {"$in": sorted({c["authorId"] for c in comments})}})}
        edges = [{"node": {"id": c["_id"], "body": c["body"], "visibility": c["visibility"],
                           "createdAt": c["createdAt"].isoformat(),
                           "author": {"id": c["authorId"], "name": authors.get(c["authorId"], {}).get("name")}}}
                 for c in comments[:20]]
        return JSONResponse({"data": {"case": {
            "id": found["_id"], "subject": found["subject"], "status": found["status"],
            "priority": found["priority"], "comments": {"edges": edges}}}})

    async def cases(request: Request) -> Response:
        me = identity(request)
        docs = await state["store"].tenant(me.tenant)["cases"].find(
            {}, sort=[("updatedAt", -1), ("_id", -1)], limit=51)
        edges = [{"cursor": _cursor(d["updatedAt"], d["_id"]),
                  "node": {"id": d["_id"], "subject": d["subject"], "status": d["status"], "priority": d["priority"]}}
                 for d in docs[:50]]
        return JSONResponse({"data": {"cases": {"edges": edges, "pageInfo": {
            "hasNextPage": len(docs) > 50, "endCursor": edges[-1]["cursor"] if edges else None}}}})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        state["store"] = Store(mongo_url, db)
        yield
        await state["store"].close()

    return Starlette(routes=[Route("/case", case), Route("/cases", cases)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["raw", "raw-broadcast", "raw-asgi", "naive", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="")
    parser.add_argument("--mongo", default="")
    parser.add_argument("--db", default="collabhub")
    args = parser.parse_args()
    if args.kind in ("raw", "raw-broadcast"):
        import uvloop

        uvloop.install()
        asyncio.run(raw(args.port, args.redis, library_broadcast=args.kind == "raw-broadcast"))
        return
    import uvicorn

    app = {"raw-asgi": lambda: RawASGI(args.redis), "naive": lambda: naive_app(args.redis),
           "bare": lambda: bare_app(args.mongo, args.db)}[args.kind]()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets-sansio",
                ws_per_message_deflate=False, lifespan="on", backlog=4096)


if __name__ == "__main__":
    main()
