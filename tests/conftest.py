"""Session-wide real servers: Redis, a SecantusDB store and a hub process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.embedded import EmbeddedStore
from tests.harness import Client, HubProcess, new_tenant
from tests.redis_server import start_redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("HUB_TEST_REDIS_URL"):
        yield url
        return
    server = start_redis()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    if url := os.environ.get("HUB_TEST_MONGODB_URL"):
        yield url
        return
    store = EmbeddedStore(":memory:").start()
    yield store.url
    store.stop()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def hub_env(redis_url: str, mongo_url: str) -> dict[str, str]:
    return {
        "HUB_ENV": "test",
        "HUB_MONGODB_URL": mongo_url,
        "HUB_MONGODB_DB": f"test_{uuid.uuid4().hex[:8]}",
        "HUB_REDIS_URL": redis_url,
        "HUB_OUTBOX_INTERVAL_S": "0.5",
        "HUB_TOKEN_RECHECK_S": "1",
        "HUB_WS_INIT_TIMEOUT_S": "1",
        "HUB_RATE_LIMIT_ANON_PER_MIN": "5000",  # every test client shares 127.0.0.1
        "HUB_WEBHOOK_RETRY_BASE_S": "0.2",  # webhook retries in tenths of seconds (test_webhooks.py)
        "HUB_WEBHOOK_POLL_S": "0.1",
    }


@pytest.fixture(scope="session")
def hub(hub_env: dict[str, str], log_dir: Path) -> Iterator[HubProcess]:
    """The shared hub process most tests talk to."""
    process = HubProcess(hub_env, log_dir).start()
    yield process
    process.stop()


@pytest.fixture
def spawn_hub(hub_env: dict[str, str], log_dir: Path) -> Iterator[Callable[..., HubProcess]]:
    """Start extra hub processes (same store and Redis unless overridden); stopped after the test."""
    started: list[HubProcess] = []

    def spawn(**env: str) -> HubProcess:
        process = HubProcess({**hub_env, **env}, log_dir).start()
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill()


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def user(hub: HubProcess, tenant: str) -> Callable[..., Client]:
    """`user("alice", "agent")` → a client of this test's tenant."""

    def make(sub: str, role: str | list[str] = "agent", tenant_id: str | None = None, **claims: Any) -> Client:
        return Client(hub, sub, role, tenant_id or tenant, **claims)

    return make
