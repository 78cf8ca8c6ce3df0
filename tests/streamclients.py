"""Asyncio clients for the fault tests: many resuming subscribers, a paced writer, probes.

* :class:`Follower` — one graphql-transport-ws connection following `caseActivity` like a real
  client: it keeps the last cursor it received and, when the connection drops or the stream ends
  with a retryable error, reconnects (to the next hub of its list) and resubscribes with it.
* :class:`Writer` — mutations at a steady rate across hubs, recording each outcome and latency.
* :class:`ReadyProbe` — polls `/readyz` of each hub and keeps the timeline.
* :func:`rss_mb` — the resident memory of a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.harness import HubProcess

FOLLOW = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  seq cursor occurredAt } }"""
COMMENT = """mutation($id: ID!, $b: String!) { commentAdd(input: {subjectId: $id, body: $b}) {
  errors { code message field } comment { id } } }"""
CREATE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code message field } case { id } } }"""
RETRYABLE = {"UNAVAILABLE"}
BACKOFF_MAX = 8.0
"""Largest reconnect delay of a :class:`Follower` (seconds)."""


def now() -> float:
    return time.monotonic()


@dataclass
class Follower:
    """Follows one case over its own WebSocket, resuming from its last cursor whatever happens."""

    token: str
    case_id: str
    urls: Sequence[str]
    """WebSocket URLs in fail-over order: a lost connection moves on to the next one."""
    cursor: str | None = None
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    """Seconds from the event's `occurredAt` to its arrival here (live events only)."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Errors that are not retryable (anything but `UNAVAILABLE`): a test expects none."""
    retryable: list[str] = field(default_factory=list)
    reconnects: int = 0
    failures: int = 0
    """Connection failures since the last event (the exponent of the reconnect backoff)."""
    ended: list[str] = field(default_factory=list)
    """Why each subscription that ended without a connection failure ended (diagnostics)."""
    hub: int = 0
    subscribed_at: float = 0.0
    """When the last `subscribe` was sent (monotonic)."""
    lost_at: float | None = None
    """When the last connection was lost, until the first event after it arrives."""
    resumed_after: list[float] = field(default_factory=list)
    """Seconds from each lost connection to the next event received (the client's outage)."""
    live: asyncio.Event = field(default_factory=asyncio.Event)
    open_timeout: float = 10.0
    started_at: float = 0.0
    first_at: float = 0.0
    """When :meth:`run` started, and when the first event arrived (monotonic)."""

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def run(self) -> None:
        """Until cancelled or a non-retryable error: connect, subscribe from the cursor, read;
        on any loss, resume."""
        self.started_at = now()
        while True:
            url = self.urls[self.hub % len(self.urls)]
            try:
                async with connect(url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                   open_timeout=self.open_timeout, ping_interval=None,
                                   max_size=None, compression=None) as ws:
                    if not await self._session(ws):
                        return
                self.failures += 1  # ended retryably: resume on this hub, backing off (below)
                await asyncio.sleep(self._backoff())
                continue
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidStatus, TimeoutError, EOFError):
                pass
            # the connection is gone (process killed, refused, reset, or closed before it was of
            # use): try the next hub, backing off exponentially with full jitter, as a client should
            # (retrying at once turns an overload into a storm that never ends)
            self.reconnects += 1
            self.failures += 1
            self.hub += 1
            if self.lost_at is None:
                self.lost_at = now()
            await asyncio.sleep(self._backoff())

    def _backoff(self) -> float:
        return random.uniform(0.05, min(BACKOFF_MAX, 0.25 * 2 ** self.failures))

    async def _session(self, ws: ClientConnection) -> bool:
        """One subscription on `ws`; False after a non-retryable error (the follower stops)."""
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}}))
        while (ack := json.loads(await ws.recv()))["type"] != "connection_ack":
            if ack["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": FOLLOW, "variables": {"id": self.case_id, "after": self.cursor}}}))
        self.subscribed_at = now()
        async for raw in ws:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "next" and message["payload"].get("errors"):
                return self._error(message["payload"]["errors"])
            elif kind == "next":
                self._event(message["payload"]["data"]["caseActivity"])
            elif kind == "error":
                return self._error(message["payload"])
            elif kind == "complete":
                self.ended.append("complete")
                return True
        self.ended.append(f"closed {ws.close_code}")
        return True  # closed by the server (e.g. it is shutting down): resume

    def _event(self, event: dict[str, Any]) -> None:
        arrived = time.time()
        self.failures = 0
        self.seqs.append(event["seq"])
        self.cursor = event["cursor"]
        self.latencies.append(arrived - datetime.fromisoformat(event["occurredAt"]).timestamp())
        if self.lost_at is not None:
            self.resumed_after.append(now() - self.lost_at)
            self.lost_at = None
        if not self.live.is_set():
            self.first_at = now()
            self.live.set()

    def _error(self, errors: list[dict[str, Any]]) -> bool:
        """Record an error; True if it is retryable (resubscribe from the cursor)."""
        extensions = errors[0].get("extensions") or {}
        self.ended.append(f"error {extensions.get('code')} {extensions.get('reason', '')}".strip())
        if extensions.get("code") in RETRYABLE:
            self.retryable.append(str(extensions.get("reason", extensions["code"])))
            if self.lost_at is None:
                self.lost_at = now()
            return True
        self.errors.extend(errors)
        return False

    def problems(self, first: int, last: int) -> str | None:
        """Why the received sequence is not exactly `first..last` (None when it is)."""
        expected = list(range(first, last + 1))
        if self.seqs == expected:
            return None
        dups = len(self.seqs) - len(set(self.seqs))
        missing = sorted(set(expected) - set(self.seqs))
        return f"{self.case_id}: {len(self.seqs)} events, {dups} duplicates, missing {missing[:10]}, " \
               f"out of order {self.seqs != sorted(self.seqs)}, errors {self.errors[:1]}"


@dataclass
class Outcome:
    at: float
    latency: float
    hub: int
    ok: bool
    code: str | None = None
    message: str = ""


class Writer:
    """Issues `make(i)` mutations at `rate` per second, spread over `hubs`, until stopped.

    Each mutation runs as its own task (a slow one does not delay the next). A hub that refuses the
    connection is skipped for a second (nothing was sent, so the mutation goes to the next hub);
    an `UNAVAILABLE` answer is retried after 0.5 s, like a client told "retry shortly" would; a
    mutation lost in flight (connection reset after sending) is recorded as such, not retried.
    """

    def __init__(self, hubs: Sequence[HubProcess], token: str, make: Callable[[int], tuple[str, dict[str, Any]]],
                 rate: float) -> None:
        self.hubs = list(hubs)
        self.make = make
        self.rate = rate
        self.outcomes: list[Outcome] = []
        self.retried: list[Outcome] = []
        """Attempts answered `UNAVAILABLE` and retried (at most `retries_per_mutation` per mutation)."""
        self.retries_per_mutation = 3
        self.in_flight_lost = 0
        self._down_until = [0.0] * len(self.hubs)
        self._http = httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"},
                                       limits=httpx.Limits(max_connections=100))
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        start = now()
        i = 0
        while not stop.is_set():
            delay = start + i / self.rate - now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            task = asyncio.create_task(self._one(i))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            i += 1
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        await self._http.aclose()

    async def _one(self, i: int) -> None:
        query, variables = self.make(i)
        retries = self.retries_per_mutation
        for attempt in range(2 * len(self.hubs) + retries):
            h = (i + attempt) % len(self.hubs)
            if self._down_until[h] > now():
                continue
            began = now()
            try:
                response = await self._http.post(f"{self.hubs[h].url}/graphql",
                                                 json={"query": query, "variables": variables})
            except httpx.ConnectError:
                self._down_until[h] = now() + 1.0
                continue
            except httpx.TransportError:
                self.in_flight_lost += 1
                return
            outcome = self.outcome(began, h, response)
            if outcome.code in RETRYABLE and retries > 0:  # what a client told "retry shortly" does
                self.retried.append(outcome)
                retries -= 1
                await asyncio.sleep(0.5)
                continue
            self.outcomes.append(outcome)
            return
        self.outcomes.append(Outcome(now(), 0.0, -1, False, "NO_HUB"))

    @staticmethod
    def outcome(began: float, hub: int, response: httpx.Response) -> Outcome:
        """The outcome of one mutation's HTTP response (its first error, if any)."""
        latency = now() - began
        body = response.json()
        if body.get("errors"):
            error = body["errors"][0]
            return Outcome(began, latency, hub, False, (error.get("extensions") or {}).get("code"), error["message"])
        (payload,) = body["data"].values()
        if isinstance(payload, dict) and payload.get("errors"):
            error = payload["errors"][0]
            return Outcome(began, latency, hub, False, error["code"], error["message"])
        return Outcome(began, latency, hub, True)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def committed_between(self, start: float, end: float) -> int:
        return sum(1 for o in self.outcomes if o.ok and start <= o.at + o.latency <= end)


class ReadyProbe:
    """Polls `/readyz` of every hub every `interval` seconds: `timeline[h]` is `(time, status)`."""

    def __init__(self, hubs: Sequence[HubProcess], interval: float = 0.1) -> None:
        self.hubs = list(hubs)
        self.interval = interval
        self.timeline: list[list[tuple[float, int]]] = [[] for _ in self.hubs]

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await asyncio.gather(*(self._poll(http, h) for h in range(len(self.hubs))))

    async def _poll(self, http: httpx.AsyncClient, h: int) -> None:
        while True:
            try:
                status = (await http.get(f"{self.hubs[h].url}/readyz")).status_code
            except httpx.HTTPError:
                status = 0
            self.timeline[h].append((now(), status))
            await asyncio.sleep(self.interval)

    def first(self, h: int, status: int, after: float) -> float | None:
        """Seconds after `after` until hub `h` first answered `status` (None: never)."""
        for at, got in self.timeline[h]:
            if at >= after and got == status:
                return at - after
        return None

    async def wait(self, status: int, after: float, deadline: float = 20.0) -> list[float]:
        """Wait until every hub answered `status` after `after`; seconds it took for each."""
        while True:
            seen = [self.first(h, status, after) for h in range(len(self.hubs))]
            if all(s is not None for s in seen):
                return [s for s in seen if s is not None]
            if now() - after > deadline:
                raise AssertionError(f"/readyz never answered {status}: {seen}")
            await asyncio.sleep(self.interval)


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def until(predicate: Callable[[], bool], what: str, deadline: float,
                state: Callable[[], object] | None = None) -> float:
    """Poll `predicate` every 50 ms; seconds it took, AssertionError (with `state()`) after `deadline`."""
    began = now()
    while not predicate():
        if now() - began > deadline:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}: {state() if state else ''}")
        await asyncio.sleep(0.05)
    return now() - began


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def stop_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
