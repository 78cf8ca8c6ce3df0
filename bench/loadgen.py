"""Subscriber load generator: one process holds many graphql-transport-ws connections.

Each connection is a bare `asyncio.Protocol` (no task and no queue per connection, no
compression): the `websockets` sans-I/O client does the opening handshake and frames what the
client sends; the server's frames are then parsed here (unmasked, unfragmented text frames, as
every server under test sends them), and a `next` frame's `seq`, `cursor` and send time are read
with byte searches instead of a JSON decode (anything else is decoded in full). That keeps the
client's cost per delivery at a few microseconds, so the load generators take as little as
possible of the CPU the servers share with them. For every `next` frame it records the stream
`seq` (gaps, duplicates) and the latency from the send time embedded in the event (`data.body` =
`"<phase>:<n>:<unix time>"`). A subscription ended by a resumable error (`SLOW_CONSUMER`)
resubscribes from its last cursor, like a real client.

Driven by the harness over a `multiprocessing` pipe: `open` → `status` → … → `report` → `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from array import array
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri


class Stats:
    """What one process saw, per publishing phase."""

    def __init__(self) -> None:
        self.latencies: dict[int, array[float]] = defaultdict(lambda: array("d"))
        self.last_recv: dict[int, float] = {}
        self.gaps = 0
        self.duplicates = 0
        self.errors: dict[str, int] = defaultdict(int)
        self.resubscribes = 0
        self.received = 0


class Subscriber(asyncio.Protocol):
    """One WebSocket connection with one subscription."""

    def __init__(self, url: str, token: str, query: str, variables: dict[str, Any], stats: Stats) -> None:
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None)
        self.token = token
        self.query = query
        self.variables = variables
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.last_seq: int | None = None
        self.cursor: str | None = None
        self.op = 0
        self.retries = 0
        self.live = False
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.opened = False
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.opened:
            self._frames(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self._fail(self.ws.handshake_exc)
                    return
                self.opened = True
                self._send({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}})
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._message(event.data)
        self._flush()

    def _frames(self, data: bytes) -> None:
        """Server frames after the handshake: complete ones are handled, a partial one is kept."""
        buf = self.buf + data if self.buf else data
        n = len(buf)
        i = 0
        while n - i >= 2:
            length = buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length, head = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif length == 127:
                if n - i < 10:
                    break
                length, head = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            end = i + head + length
            if end > n:
                break
            opcode = buf[i] & 0x0F
            if opcode == 1:
                self._text(buf[i + head:end])
            elif opcode == 8:  # close
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
                return
            elif opcode == 9:  # ping: answer with a pong carrying the same data
                self.ws.send_pong(buf[i + head:end])
                self._flush()
            i = end
        self.buf = buf[i:] if i < n else b""

    def _text(self, raw: bytes) -> None:
        if raw.startswith(b'{"id":') and b'"type":"next"' in raw and b'"errors"' not in raw:
            at = raw.find(b'"seq":')
            body = raw.find(b'"body":"')
            if at >= 0 and body >= 0:
                at += 6
                stop = at
                while 48 <= raw[stop] <= 57:
                    stop += 1
                cursor = raw.find(b'"cursor":"')
                if cursor >= 0:
                    cursor += 10
                    self.cursor = raw[cursor:raw.index(b'"', cursor)].decode()
                body += 8
                self._seen(int(raw[at:stop]), raw[body:raw.index(b'"', body)].decode())
                return
        self._message(raw)
        self._flush()  # (a pong, a resubscription)

    def eof_received(self) -> bool | None:
        self.closed = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.acked.done():
            self.acked.set_exception(ConnectionError(f"closed before connection_ack: {exc}"))

    def _fail(self, exc: BaseException) -> None:
        if not self.acked.done():
            self.acked.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _send(self, message: dict[str, Any]) -> None:
        self.ws.send_text(orjson.dumps(message))

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def subscribe(self) -> None:
        self.op += 1
        variables = dict(self.variables)
        if self.cursor is not None:
            variables["after"] = self.cursor
        self._send({"id": str(self.op), "type": "subscribe", "payload": {"query": self.query, "variables": variables}})
        if not self.closed:
            self._flush()

    def _message(self, raw: bytes) -> None:
        message = orjson.loads(raw)
        kind = message["type"]
        if kind == "next":
            payload = message["payload"]
            if "errors" in payload:
                self._error(payload["errors"])
                return
            self._event(next(iter(payload["data"].values())))
        elif kind == "connection_ack":
            self.subscribe()
            if not self.acked.done():
                self.acked.set_result(None)
        elif kind == "ping":
            self._send({"type": "pong"})
        elif kind == "error":
            self._error(message["payload"])

    def _event(self, event: dict[str, Any]) -> None:
        self.cursor = event.get("cursor")
        self._seen(event["seq"], event["data"]["body"])

    def _seen(self, seq: int, body: str) -> None:
        now = time.time()
        stats = self.stats
        stats.received += 1
        self.live = True
        self.retries = 0
        last = self.last_seq
        if last is not None:
            if seq <= last:
                stats.duplicates += 1
                return
            if seq != last + 1:
                stats.gaps += seq - last - 1
        self.last_seq = seq
        phase, _, sent = body.split(":")
        p = int(phase)
        stats.latencies[p].append(now - float(sent))
        stats.last_recv[p] = now

    def _error(self, errors: list[dict[str, Any]]) -> None:
        extensions = (errors[0].get("extensions") or {}) if errors else {}
        self.stats.errors[str(extensions.get("reason") or extensions.get("code") or "UNKNOWN")] += 1
        if extensions.get("resumable") or extensions.get("code") == "UNAVAILABLE":  # retry, from the cursor
            self.stats.resubscribes += 1
            self.retries += 1
            delay = min(10.0, 0.2 * 2 ** min(self.retries, 6)) * random.uniform(0.5, 1.0)  # backoff, jitter
            asyncio.get_running_loop().call_later(delay, self.subscribe)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


async def _open_all(specs: list[dict[str, Any]], stats: Stats, concurrency: int = 16) -> tuple[list[Subscriber], int]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    opened: list[Subscriber] = []
    failed = 0

    async def one(spec: dict[str, Any]) -> None:
        nonlocal failed
        async with gate:
            host, port = spec["url"].split("//", 1)[1].split("/", 1)[0].split(":")
            for attempt in range(5):
                try:
                    _, sub = await loop.create_connection(
                        lambda: Subscriber(spec["url"], spec["token"], spec["query"], spec["variables"], stats),
                        host, int(port))
                    await asyncio.wait_for(sub.acked, 20)
                    opened.append(sub)
                    return
                except (OSError, TimeoutError, ConnectionError):
                    await asyncio.sleep(0.2 * (attempt + 1))
            failed += 1

    await asyncio.gather(*(one(spec) for spec in specs))
    return opened, failed


def _report(stats: Stats) -> dict[str, Any]:
    return {
        "phases": {p: {"latencies": lat.tobytes(), "last_recv": stats.last_recv.get(p)} for p, lat in
                   stats.latencies.items()},
        "gaps": stats.gaps, "duplicates": stats.duplicates, "errors": dict(stats.errors),
        "resubscribes": stats.resubscribes, "received": stats.received,
    }


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    subs: list[Subscriber] = []
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()


    def read() -> None:  # a thread: the pipe stays blocking (uvloop's add_reader would not)
        while True:
            try:
                command = pipe.recv()
            except EOFError:
                command = {"cmd": "close"}
            loop.call_soon_threadsafe(commands.put_nowait, command)
            if command["cmd"] == "close":
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        command = await commands.get()
        kind = command["cmd"]
        if kind == "open":
            opened, failed = await _open_all(command["specs"], stats)
            subs += opened
            pipe.send({"opened": len(opened), "failed": failed})
        elif kind == "status":
            pipe.send({"live": sum(1 for s in subs if s.live and not s.closed), "open": sum(not s.closed for s in subs),
                       "received": stats.received,
                       "at_least": min((s.last_seq or 0) for s in subs) if subs else 0})
        elif kind == "report":
            pipe.send(_report(stats))
            stats = Stats()
            for sub in subs:
                sub.stats = stats
        elif kind == "close":
            for sub in subs:
                sub.close()
            await asyncio.sleep(0.1)
            pipe.send({"closed": len(subs)})
            return


def worker(pipe: Connection) -> None:
    """Entry point of a load-generator process."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(pipe))
