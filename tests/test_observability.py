"""Observability: request ids in responses and JSON log lines, Prometheus families after traffic."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.harness import Client, HubProcess

CASE = """mutation CreateForMetrics($s: String!) { caseCreate(input: {subject: $s, description: "d"}) {
  case { id } errors { code } } }"""


def log_lines(hub: HubProcess, needle: str, *, at_least: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    """JSON log lines of `hub` mentioning `needle` (waits until there are `at_least`)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for raw in hub.log_path.read_text().splitlines():
            if needle in raw and raw.startswith("{"):
                found.append(json.loads(raw))
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_log_line_is_json(hub: HubProcess, user: Callable[..., Client]) -> None:
    user("alice", "agent").gql("{ viewer { id } }")
    lines = [raw for raw in hub.log_path.read_text().splitlines() if raw.strip()]
    assert lines, "the hub logged nothing"
    parsed = [json.loads(raw) for raw in lines if raw.startswith("{")]
    assert len(parsed) == len([raw for raw in lines if not raw.startswith(("Collab Hub", "  "))])
    assert all({"ts", "level", "logger", "msg"} <= set(p) for p in parsed)


def test_request_id_is_echoed_and_on_every_line_of_the_request(hub: HubProcess, user: Callable[..., Client]) -> None:
    # given
    alice = user("alice", "agent")
    rid = f"obs-{uuid.uuid4().hex}"
    # when a named query fails unexpectedly inside a resolver
    response = alice.http.post("/graphql", headers={"X-Request-Id": rid},
                               json={"query": "query DebugForLogs { _debugFail }"})
    # then the id comes back and the error line and the access line carry it and the operation
    assert response.headers["x-request-id"] == rid
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL"
    lines = log_lines(hub, rid, at_least=2)
    error = next(line for line in lines if line["logger"] == "hub.errors")
    assert error["level"] == "error" and "debug failure" in error["exc"]
    access = next(line for line in lines if line["logger"] == "hub.access")
    for line in (error, access):
        assert line["request_id"] == rid
        assert line["operation"] == "DebugForLogs" and line["operation_type"] == "query"
        assert line["tenant"] == alice.tenant and line["user"] == "alice"
    assert access["method"] == "POST" and access["path"] == "/graphql" and access["status"] == 200
    assert access["duration_ms"] >= 0


def test_request_ids_are_generated_when_missing_or_unsafe(hub: HubProcess, user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    mutation = alice.http.post("/graphql", json={"query": CASE, "variables": {"s": "log me"},
                                                 "operationName": "CreateForMetrics"})
    generated = mutation.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    (access,) = [line for line in log_lines(hub, generated) if line["logger"] == "hub.access"]
    assert access["operation"] == "CreateForMetrics" and access["operation_type"] == "mutation"
    unsafe = alice.http.post("/graphql", headers={"X-Request-Id": "bad id\twith spaces"},
                             json={"query": "{ viewer { id } }"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces" and len(unsafe.headers["x-request-id"]) == 32
    # probes get one too, and unauthenticated failures (answered before GraphQL) as well
    assert httpx.get(f"{hub.url}/healthz").headers["x-request-id"]
    denied = httpx.post(f"{hub.url}/graphql", headers={"Authorization": "Bearer nope", "X-Request-Id": "r-401"},
                        json={"query": "{ viewer { id } }"})
    assert denied.status_code == 401 and denied.headers["x-request-id"] == "r-401"
    (line,) = [x for x in log_lines(hub, "r-401") if x["logger"] == "hub.access"]
    assert line["status"] == 401


def test_websocket_handshake_carries_the_request_id(hub: HubProcess, user: Callable[..., Client]) -> None:
    rid = f"ws-{uuid.uuid4().hex}"
    alice = user("alice", "agent")
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                 additional_headers={"X-Request-Id": rid}) as ws:
        assert ws.response is not None and ws.response.headers["x-request-id"] == rid
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
    lines = log_lines(hub, rid, at_least=2)
    assert {line["msg"].split(" ")[1] for line in lines} >= {"open", "closed"}
    assert all(line["transport"] == "ws" for line in lines)


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def scrape(hub: HubProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """`/metrics` as {sample name: {labels: value}}."""
    text = httpx.get(f"{hub.url}/metrics").text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    return sum(v for k, v in samples.get(name, {}).items() if set(labels.items()) <= set(k))


def test_metrics_expose_each_family_with_sensible_values(
    spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    # given a hub of its own (own database: its worker is the only one sending these webhooks)
    own = spawn_hub(HUB_MONGODB_DB=f"obs_{uuid.uuid4().hex[:8]}")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        admin, agent = Client(own, "root", "admin", tenant), Client(own, "alice", "agent", tenant)
        before = scrape(own)
        admin.mutate("""mutation($u: String!) { webhookCreate(input: {url: $u, kinds: ["case.*", "comment.*"]}) {
          secret errors { code } } }""", u=f"http://127.0.0.1:{receiver.server_address[1]}/")
        case_id = agent.mutate(CASE, s="first")["case"]["id"]
        # when someone follows the case live while it changes, and a query fails
        with agent.subscribe("""subscription($id: ID!) { caseActivity(caseId: $id) { kind seq } }""",
                             id=case_id) as sub:
            time.sleep(0.3)  # the subscription is registered before the change
            during = scrape(own)
            agent.mutate("""mutation($id: ID!) { commentAdd(input: {subjectId: $id, body: "hi"}) {
              errors { code } } }""", id=case_id)
            assert sub.next()["caseActivity"]["kind"] == "comment.added"
        assert agent.gql("{ viewer { id } }")["viewer"]["id"] == "alice"
        assert agent.raw("{ case(id: 1) { nope } }")["errors"]
        deadline = time.monotonic() + 10
        while total(scrape(own), "hub_webhook_attempts_total", outcome="delivered") < 2:
            assert time.monotonic() < deadline, "webhooks not delivered"
            time.sleep(0.1)
        after = scrape(own)
    finally:
        receiver.shutdown()
        receiver.server_close()

    def grew(name: str, by: float = 1, **labels: str) -> None:
        delta = total(after, name, **labels) - total(before, name, **labels)
        assert delta >= by, f"{name}{labels} grew by {delta}, expected at least {by}"

    # then: requests, operations by type, errors
    grew("hub_http_requests_total", 4, method="POST", status="200")
    grew("hub_http_request_seconds_count", 4, method="POST")
    grew("hub_graphql_requests_total", 4, kind="http")
    grew("hub_graphql_operations_total", 3, type="mutation")
    grew("hub_graphql_operations_total", 1, type="query")
    grew("hub_graphql_operations_total", 1, type="subscription")
    grew("hub_graphql_errors_total", 1, code="GRAPHQL_VALIDATION_FAILED")
    # active connections and subscriptions while the subscription was open, none after
    assert total(during, "hub_ws_connections") == 1 and total(during, "hub_subscriptions") == 1
    assert total(after, "hub_ws_connections") == 0 and total(after, "hub_subscriptions") == 0
    # events published and delivered, with their latency
    assert total(after, "hub_events_published") >= 3  # webhook.created, case.created, comment.added
    grew("hub_events_delivered_total", 1)
    grew("hub_event_delivery_seconds_count", 1)
    assert total(after, "hub_event_delivery_seconds_sum") < 5 * total(after, "hub_event_delivery_seconds_count")
    assert total(after, "hub_bus_reconnects") == 0 and "hub_event_publish_failures" in after
    assert total(after, "hub_store_commands") > 0
    # webhooks: queued, attempted, timed
    grew("hub_webhook_deliveries_queued_total", 2)  # case.created, comment.added
    grew("hub_webhook_attempts_total", 2, outcome="delivered")
    grew("hub_webhook_delivery_seconds_count", 2)
