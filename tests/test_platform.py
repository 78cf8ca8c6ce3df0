"""The platform spine end to end: process, health, identity, limits, isolation, fan-out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hub.settings import Settings
from tests.harness import Client, GraphQLErrors, HubProcess, token
from tests.redis_server import start_redis

CREATE = """mutation($s: String!) { caseCreate(input: {subject: $s}) {
  errors { code message field } case { id subject status version customer { id } } } }"""
READ = "query($id: ID!) { case(id: $id) { id subject } }"
SET_STATUS = """mutation($id: ID!, $s: CaseStatus!) {
  caseSetStatus(input: {caseId: $id, status: $s}) { errors { code message } case { status } } }"""
HISTORY = "query($s: ID!) { activity(stream: $s) { edges { cursor node { seq kind } } } }"
ACTIVITY = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  seq kind cursor summary visibility actor { id } } }"""


def test_settings_refuse_dev_secret_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ENV", "production")
    monkeypatch.delenv("HUB_JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="HUB_JWT_SECRET"):
        Settings()
    monkeypatch.setenv("HUB_JWT_SECRET", "x" * 40)
    assert Settings().production


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "9123")
    monkeypatch.setenv("HUB_MONGODB_DB", "other")
    settings = Settings()
    assert (settings.port, settings.mongodb_db, settings.redis_url) == (9123, "other", None)


def test_health_and_metrics(hub: HubProcess) -> None:
    assert httpx.get(f"{hub.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{hub.url}/readyz").json() == {"store": True, "bus": True}
    text = httpx.get(f"{hub.url}/metrics").text
    assert "hub_store_commands" in text and "hub_ws_connections" in text


def test_graphiql_served_to_browsers(hub: HubProcess) -> None:
    page = httpx.get(f"{hub.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_create_and_read_a_case(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    created = alice.mutate(CREATE, s="Printer on fire")["case"]
    assert created["status"] == "NEW" and created["version"] == 1
    assert alice.gql(READ, id=created["id"])["case"]["subject"] == "Printer on fire"
    assert alice.gql("{ viewer { id name roles } }")["viewer"] == {
        "id": "alice", "name": "Alice", "roles": ["agent"]}


def test_missing_expired_and_forged_tokens_get_401(hub: HubProcess, tenant: str) -> None:
    query = {"query": "{ viewer { id } }"}
    assert httpx.post(f"{hub.url}/graphql", json=query).status_code == 401
    expired = token("bob", "agent", tenant, ttl=-60)
    forged = token("bob", "agent", tenant)[:-4] + "AAAA"
    for bad in (expired, forged, "not-a-jwt"):
        response = httpx.post(f"{hub.url}/graphql", json=query, headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_tenant_isolation(user: Callable[..., Client]) -> None:
    mine = user("alice", "supervisor")
    theirs = user("mallory", "supervisor", tenant_id="other-" + mine.tenant)
    case_id = mine.mutate(CREATE, s="Private matter")["case"]["id"]
    assert theirs.gql(READ, id=case_id)["case"] is None
    assert theirs.gql("{ cases { edges { node { id } } } }")["cases"]["edges"] == []
    with pytest.raises(GraphQLErrors) as denied:
        theirs.gql("query($s: ID!) { activity(stream: $s) { edges { node { id } } } }", s=f"case:{case_id}")
    assert denied.value.codes == ["NOT_FOUND"]


def test_bad_input_is_answered_clearly(hub: HubProcess, user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    headers = {"Authorization": f"Bearer {alice.token}", "content-type": "application/json"}
    malformed = httpx.post(f"{hub.url}/graphql", content=b"{not json", headers=headers)
    assert malformed.status_code == 400
    huge = httpx.post(f"{hub.url}/graphql", content=b" " * 3_000_000, headers=headers)
    assert huge.status_code == 413
    unknown = alice.raw("{ nope }")
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert alice.gql(READ, id="case_doesnotexist")["case"] is None
    assert alice.mutate_error(CREATE, s="   ") == {
        "code": "INVALID", "message": "subject must not be empty", "field": "subject"}


def test_query_depth_and_alias_limits(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    aliases = " ".join(f"a{i}: viewer {{ id }}" for i in range(40))
    assert "aliases" in alice.raw(f"{{ {aliases} }}")["errors"][0]["message"].lower()
    deep = "{ cases { edges { node { customer { id } } } } }"
    assert "errors" not in alice.raw(deep)


def test_websocket_auth(hub: HubProcess, tenant: str) -> None:
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": "Bearer junk"}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)  # never sends connection_init
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    good = token("alice", "agent", tenant)
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {good}"}}))
        assert json.loads(ws.recv(timeout=5))["type"] == "connection_ack"


def test_legacy_graphql_ws_protocol_refused(hub: HubProcess) -> None:
    with pytest.raises(Exception):  # noqa: B017 - handshake refused, no subprotocol agreed
        with connect(hub.ws_url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ws.recv(timeout=3)


def test_mutation_on_one_process_reaches_subscriber_on_another(
    user: Callable[..., Client], spawn_hub: Callable[..., HubProcess]
) -> None:
    other = spawn_hub()
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Fan-out")["case"]["id"]
    history = alice.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]
    assert [e["node"]["kind"] for e in history] == ["case.created"]
    with alice.subscribe(ACTIVITY, hub=other, id=case_id, after=history[0]["cursor"]) as sub:
        time.sleep(0.5)  # the subscription is live on the other process by now
        for status in ("OPEN", "PENDING", "OPEN"):
            alice.mutate(SET_STATUS, id=case_id, s=status)
        events = [e["caseActivity"] for e in sub.take(3)]
    assert [e["seq"] for e in events] == [2, 3, 4]
    assert {e["kind"] for e in events} == {"case.status_changed"}
    assert events[0]["actor"]["id"] == "alice"


def test_readiness_fails_when_redis_dies(hub_env: dict[str, str], spawn_hub: Callable[..., HubProcess]) -> None:
    redis = start_redis()
    try:
        process = spawn_hub(HUB_REDIS_URL=redis.url)
        assert httpx.get(f"{process.url}/readyz").status_code == 200
        redis.kill()
        response = httpx.get(f"{process.url}/readyz", timeout=10)
        assert response.status_code == 503 and response.json()["bus"] is False
        redis.restart()
        deadline = time.monotonic() + 15
        while httpx.get(f"{process.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "never became ready again"
            time.sleep(0.2)
    finally:
        redis.stop()
