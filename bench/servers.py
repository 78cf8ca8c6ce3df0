"""Processes of a benchmark run: Redis, the store, hub processes, baseline servers, load generators."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil

from hub.embedded import EmbeddedStore, free_port
from tests.harness import HubProcess
from tests.redis_server import start_redis

ROOT = Path(__file__).resolve().parent.parent
GENEROUS = "100000000"


@dataclass
class Infra:
    redis_url: str
    mongo_url: str
    log_dir: Path
    db: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}")

    def hub_env(self, **extra: str) -> dict[str, str]:
        return {
            "HUB_ENV": "development", "HUB_MONGODB_URL": self.mongo_url, "HUB_MONGODB_DB": self.db,
            "HUB_REDIS_URL": self.redis_url, "HUB_RATE_LIMIT_PER_MIN": GENEROUS,
            "HUB_RATE_LIMIT_ANON_PER_MIN": GENEROUS, "HUB_RATE_LIMIT_SUBSCRIBE_PER_MIN": GENEROUS,
            "HUB_LOG_LEVEL": "WARNING", "HUB_WEBHOOKS_ENABLED": "0", **extra,
        }


@contextlib.contextmanager
def infra(log_dir: Path) -> Iterator[Infra]:
    """A throw-away Redis and SecantusDB (in memory) for the whole run."""
    log_dir.mkdir(parents=True, exist_ok=True)
    redis = start_redis()
    store = EmbeddedStore(":memory:", log=log_dir / "store.log").start()
    try:
        yield Infra(redis.url, store.url, log_dir)
    finally:
        store.stop()
        redis.stop()


class Baseline:
    """One `python -m bench.baselines KIND` process on a free port."""

    def __init__(self, kind: str, log_dir: Path, *args: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.log_path = log_dir / f"{kind}-{self.port}.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 30.0) -> Baseline:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.baselines", self.kind, "--port", str(self.port), *self.args],
                cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                time.sleep(0.3)  # the listener is up; give the Redis subscription a moment
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_hubs(infra: Infra, n: int = 2, **env: str) -> list[HubProcess]:
    return [HubProcess(infra.hub_env(**env), infra.log_dir).start() for _ in range(n)]


def pid_of(server: HubProcess | Baseline) -> int:
    assert server.proc is not None
    return server.proc.pid


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


def scrape(url: str) -> dict[str, float]:
    """Gauges and counters of a hub's /metrics (unlabelled series only)."""
    out: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
    return out


class LoadGenerators:
    """`n` subscriber processes (bench.loadgen), each holding a share of the connections."""

    def __init__(self, n: int) -> None:
        from bench import loadgen

        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=loadgen.worker, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self._next = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ask(self, command: dict[str, Any], timeout: float = 600.0) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(command)
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError(f"load generator did not answer {command['cmd']}")
            answers.append(pipe.recv())
        return answers

    def open(self, specs: list[dict[str, Any]]) -> tuple[int, int]:
        """Open connections, spread evenly over the processes; returns (opened, failed)."""
        shares: list[list[dict[str, Any]]] = [[] for _ in self.pipes]
        for spec in specs:
            shares[self._next % len(shares)].append(spec)
            self._next += 1
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send({"cmd": "open", "specs": share})
        answers = [pipe.recv() for pipe in self.pipes]
        return sum(a["opened"] for a in answers), sum(a["failed"] for a in answers)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask({"cmd": "close"}, timeout=30)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
