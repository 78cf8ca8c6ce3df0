"""A small TCP fault proxy for tests: put it between a hub and its store (or Redis) and break the link.

Modes (switch at any time, from any thread, with :meth:`FaultProxy.set`):

* ``PASS`` — forward bytes both ways.
* ``DELAY`` — forward, but hold every chunk ``delay`` seconds first (order preserved).
* ``DROP`` — reset every open connection now; new ones are accepted and reset at once
  (a crashed server whose port still answers, or a flapping load balancer).
* ``BLACKHOLE`` — accept, read and discard, never forward, never close (a hung server or a
  silently partitioned network: only timeouts notice). Connections that were blackholed are reset
  when the mode changes again (their byte streams have holes), new ones then pass.

The proxy runs its own event loop in a daemon thread, so it serves sync tests and hub processes
alike and never competes with a test's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["FaultProxy", "Mode"]

T = TypeVar("T")
CHUNK = 65536


class Mode(StrEnum):
    PASS = "PASS"
    DELAY = "DELAY"
    DROP = "DROP"
    BLACKHOLE = "BLACKHOLE"


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.blackholed = False
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Listens on 127.0.0.1:``port`` (a free one by default) and forwards to ``target``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode = Mode.PASS
        self.delay = 0.0
        self.accepted = 0
        self.forwarded = 0
        """Bytes forwarded in either direction."""
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    # -- control (any thread) -------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def set(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch mode; returns once it applies to every open connection."""
        self._call(lambda: self._apply(mode, delay))

    @property
    def open_connections(self) -> int:
        return self._call(lambda: len(self._links))

    def url(self, scheme: str = "mongodb", suffix: str = "/?directConnection=true") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{suffix}"

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None, "proxy not started"

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- the proxy's own loop -------------------------------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def _close(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()
        if self._server is not None:
            self._server.close()

    def _apply(self, mode: Mode, delay: float) -> None:
        self.mode, self.delay = mode, delay
        for link in list(self._links):
            if mode is Mode.DROP or (link.blackholed and mode is not Mode.BLACKHOLE):
                link.abort()
                self._links.discard(link)
            elif mode is Mode.BLACKHOLE:
                link.blackholed = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        if self.mode is Mode.DROP:
            link.abort()
            return
        self._links.add(link)
        if self.mode is Mode.BLACKHOLE:
            link.blackholed = True
        try:
            if link.blackholed:
                await self._discard(reader)
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError:
                link.abort()  # the server is down: the client sees a reset, like a closed port
                return
            link.tasks = [
                asyncio.create_task(self._pump(link, reader, link.upstream)),
                asyncio.create_task(self._pump(link, up_reader, writer)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
            link.abort()
        finally:
            self._links.discard(link)

    async def _discard(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(CHUNK):
            pass

    async def _pump(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one direction: chunks are delivered `delay` seconds after they arrived, in order;
        EOF is forwarded once everything before it was."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await pending.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if link.blackholed:
                    continue
                writer.write(data)
                self.forwarded += len(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(CHUNK):
                if link.blackholed:
                    continue
                delay = self.delay if self.mode is Mode.DELAY else 0.0
                pending.put_nowait((loop.time() + delay, data))
            pending.put_nowait(None)
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await sender

    def stats(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "accepted": self.accepted, "forwarded": self.forwarded}
