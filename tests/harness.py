"""Test harness: real hub processes, GraphQL clients over HTTP and graphql-transport-ws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from hub import auth
from hub.embedded import free_port
from hub.settings import DEV_JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent
SECRET = DEV_JWT_SECRET


class HubProcess:
    """One `collabhub serve` process on a free port, pointed at the test store and Redis."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = log_dir / f"hub-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 60.0) -> HubProcess:
        env = {**os.environ, **self.env, "HUB_PORT": str(self.port), "HUB_HOST": "127.0.0.1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--log-level", "warning"],
                env=env, stdout=log, stderr=log, cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def token(sub: str, role: str | list[str], tenant: str, **claims: Any) -> str:
    roles = [role] if isinstance(role, str) else role
    return auth.mint(SECRET, sub=sub, tenant=tenant, roles=roles, **claims)


class GraphQLErrors(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(json.dumps(errors, indent=1))
        self.errors = errors
        self.codes = [(e.get("extensions") or {}).get("code") for e in errors]


class Client:
    """A user of one tenant talking to a hub over HTTP (and WebSocket)."""

    def __init__(self, hub: HubProcess, sub: str, role: str | list[str], tenant: str, **claims: Any) -> None:
        self.hub = hub
        self.sub = sub
        self.tenant = tenant
        self.token = token(sub, role, tenant, name=claims.pop("name", sub.title()), **claims)
        self.http = httpx.Client(base_url=hub.url, timeout=30,
                                 headers={"Authorization": f"Bearer {self.token}"})

    @property
    def id(self) -> str:
        return self.sub

    def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        body: dict[str, Any] = response.json()
        body["_status"] = response.status_code
        return body

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        """Data of a successful operation; raises `GraphQLErrors` otherwise."""
        body = self.raw(query, variables)
        if body.get("errors"):
            raise GraphQLErrors(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    def mutate(self, query: str, **variables: Any) -> dict[str, Any]:
        """The single payload of a mutation, asserting it has no `errors`."""
        data = self.gql(query, **variables)
        (payload,) = data.values()
        assert payload["errors"] == [], payload["errors"]
        result: dict[str, Any] = payload
        return result

    def mutate_error(self, query: str, **variables: Any) -> dict[str, Any]:
        """The first `UserError` of a mutation that must fail."""
        data = self.gql(query, **variables)
        (payload,) = data.values()
        assert payload["errors"], f"expected a UserError, got {payload}"
        error: dict[str, Any] = payload["errors"][0]
        return error

    @contextmanager
    def subscribe(self, query: str, hub: HubProcess | None = None, **variables: Any) -> Iterator[Subscription]:
        with Subscription.open(hub or self.hub, self.token, query, variables) as sub:
            yield sub


class Subscription:
    """One graphql-transport-ws operation on its own connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    @contextmanager
    def open(cls, hub: HubProcess, tok: str, query: str, variables: dict[str, Any]) -> Iterator[Subscription]:
        with connect(hub.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
            ack = json.loads(ws.recv(timeout=10))
            assert ack["type"] == "connection_ack", ack
            ws.send(json.dumps({"id": "1", "type": "subscribe",
                                "payload": {"query": query, "variables": variables}}))
            yield cls(ws)

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `next` payload's data; raises `GraphQLErrors` on an `error` message."""
        while True:
            message = json.loads(self.ws.recv(timeout=timeout))
            if message["type"] == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    raise GraphQLErrors(payload["errors"])
                data: dict[str, Any] = payload["data"]
                return data
            if message["type"] == "error":
                raise GraphQLErrors(message["payload"])
            if message["type"] == "complete":
                raise EOFError("subscription completed")

    def take(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [self.next(timeout) for _ in range(n)]

    def nothing(self, wait: float = 0.5) -> bool:
        """True when no message arrives within `wait` seconds."""
        try:
            message = self.ws.recv(timeout=wait)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message}")


def new_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
