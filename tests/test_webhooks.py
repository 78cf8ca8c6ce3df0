"""Webhooks: signed deliveries to a real local HTTP receiver, retries, redelivery, filters, isolation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hub import auth
from hub.webhooks import UnsafeURL, backoff, check_url, sign
from tests.harness import Client, HubProcess, new_tenant

CREATE = """mutation($url: String!, $kinds: [String!]!, $max: Int) {
  webhookCreate(input: {url: $url, kinds: $kinds, description: "test", maxAttempts: $max}) {
    webhook { id url kinds active secretHint maxAttempts } secret errors { code field message }
  }
}"""
DELIVERIES = """query($id: ID!) {
  webhookDeliveries(webhookId: $id, first: 50) {
    edges { node { id eventId kind status attempts responseCode latencyMs nextAttemptAt error
                   redeliveryOf deliveredAt payload attemptLog { attempt responseCode latencyMs error } } }
  }
}"""
CASE = """mutation($s: String!) { caseCreate(input: {subject: $s, description: "d"}) {
  case { id version } errors { code message } } }"""
STATUS = """mutation($id: ID!, $st: CaseStatus!) { caseSetStatus(input: {caseId: $id, status: $st}) {
  case { id } errors { code } } }"""
COMMENT = """mutation($id: ID!, $b: String!) { commentAdd(input: {subjectId: $id, body: $b}) {
  comment { id } errors { code } } }"""
REDELIVER = """mutation($id: ID!) { webhookRedeliver(input: {deliveryId: $id}) {
  delivery { id status redeliveryOf } errors { code field message } } }"""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


class Receiver:
    """A real HTTP server in a thread: records every POST and answers with scripted statuses."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Received] = queue.Queue()
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.put(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                               body, time.monotonic()))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"try later")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def next(self, timeout: float = 10.0) -> Received:
        return self.requests.get(timeout=timeout)

    def nothing(self, wait: float = 1.0) -> bool:
        try:
            item = self.requests.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected delivery {item.json}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def create(admin: Client, url: str, kinds: list[str], max_attempts: int | None = None) -> tuple[str, str]:
    payload = admin.mutate(CREATE, url=url, kinds=kinds, max=max_attempts)
    return payload["webhook"]["id"], payload["secret"]


def deliveries(admin: Client, webhook_id: str) -> list[dict[str, Any]]:
    return [e["node"] for e in admin.gql(DELIVERIES, id=webhook_id)["webhookDeliveries"]["edges"]]


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_delivery_is_signed_and_carries_the_event(user: Callable[..., Client], receiver: Receiver) -> None:
    # given
    admin = user("root", "admin")
    webhook_id, secret = create(admin, receiver.url(), ["case.*"])
    assert secret.startswith("whsec_")
    # when
    case = user("alice", "agent").mutate(CASE, s="Printer offline")["case"]
    # then
    got = receiver.next()
    assert got.headers["x-hub-signature-256"] == "sha256=" + hmac.new(
        secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-hub-event"] == "case.created"
    assert got.headers["content-type"] == "application/json"
    body = got.json
    assert got.headers["x-hub-delivery"] == body["deliveryId"]
    assert body["webhookId"] == webhook_id and body["tenant"] == admin.tenant
    event = body["event"]
    assert event["kind"] == "case.created" and event["stream"] == f"case:{case['id']}"
    assert event["seq"] == 1 and event["actor"]["id"] == "alice" and event["visibility"] == "PUBLIC"
    assert event["data"]["subject"] == "Printer offline"
    log = wait_for(lambda: [d for d in deliveries(admin, webhook_id) if d["status"] == "DELIVERED"])
    (delivery,) = log
    assert delivery["id"] == body["deliveryId"] and delivery["attempts"] == 1
    assert delivery["responseCode"] == 200 and delivery["latencyMs"] >= 0 and delivery["error"] is None
    assert delivery["nextAttemptAt"] is None and delivery["deliveredAt"]
    assert delivery["payload"] == body


def test_failing_receiver_is_retried_with_backoff(user: Callable[..., Client], receiver: Receiver) -> None:
    # given a receiver that fails twice
    admin = user("root", "admin")
    receiver.script = [500, 503]
    webhook_id, secret = create(admin, receiver.url(), ["case.created"])
    # when
    user("alice", "agent").mutate(CASE, s="VPN drops")
    # then the same body is posted three times, each signed, with growing pauses
    attempts = [receiver.next() for _ in range(3)]
    assert len({a.body for a in attempts}) == 1
    assert [a.headers["x-hub-attempt"] for a in attempts] == ["1", "2", "3"]
    assert all(a.headers["x-hub-signature-256"] == sign(secret, a.body) for a in attempts)
    assert attempts[1].at - attempts[0].at >= 0.1  # base 0.2 s, jitter keeps at least half
    assert attempts[2].at - attempts[1].at >= 0.2
    (delivery,) = wait_for(lambda: [d for d in deliveries(admin, webhook_id) if d["status"] == "DELIVERED"])
    assert delivery["attempts"] == 3
    assert [a["responseCode"] for a in delivery["attemptLog"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attemptLog"]] == ["HTTP 500", "HTTP 503", None]
    assert receiver.nothing(0.5)


def test_exhausted_delivery_fails_and_redelivery_is_a_new_delivery(
    user: Callable[..., Client], receiver: Receiver
) -> None:
    # given a delivery that failed all its attempts
    admin = user("root", "admin")
    receiver.script = [500, 500]
    webhook_id, _ = create(admin, receiver.url(), ["case.*"], max_attempts=2)
    user("alice", "agent").mutate(CASE, s="Broken")
    first = [receiver.next() for _ in range(2)]
    (failed,) = wait_for(lambda: [d for d in deliveries(admin, webhook_id) if d["status"] == "FAILED"])
    assert failed["attempts"] == 2 and failed["error"] == "HTTP 500" and failed["nextAttemptAt"] is None
    assert receiver.nothing(0.6)
    # when (after rotating the secret) it is redelivered
    rotated = admin.mutate("""mutation($id: ID!) { webhookUpdate(input: {webhookId: $id, rotateSecret: true}) {
      webhook { version secretHint } secret errors { code } } }""", id=webhook_id)
    new_secret = rotated["secret"]
    again = admin.mutate(REDELIVER, id=failed["id"])["delivery"]
    # then a new delivery carries the same event, signed with the current secret
    assert again["redeliveryOf"] == failed["id"] and again["status"] == "PENDING" and again["id"] != failed["id"]
    got = receiver.next()
    assert got.json["event"] == first[0].json["event"]
    assert got.json["deliveryId"] == again["id"] and got.headers["x-hub-delivery"] == again["id"]
    assert got.headers["x-hub-signature-256"] == sign(new_secret, got.body)

    def once_delivered() -> dict[str, Any] | None:
        entries = {d["id"]: d for d in deliveries(admin, webhook_id)}
        return entries if entries.get(again["id"], {}).get("status") == "DELIVERED" else None

    log = wait_for(once_delivered)
    assert log[again["id"]]["status"] == "DELIVERED" and log[again["id"]]["attempts"] == 1
    assert log[failed["id"]]["status"] == "FAILED"  # the old one keeps its history
    assert admin.mutate_error(REDELIVER, id="whd_000000000000000000000000")["code"] == "NOT_FOUND"


def test_a_queued_delivery_cannot_be_redelivered(user: Callable[..., Client], receiver: Receiver) -> None:
    admin = user("root", "admin")
    receiver.script = [500] * 5  # retried for at least 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s
    webhook_id, _ = create(admin, receiver.url(), ["case.*"])
    user("alice", "agent").mutate(CASE, s="Queued")
    receiver.next()
    (queued,) = deliveries(admin, webhook_id)
    assert queued["status"] in ("PENDING", "SENDING") and queued["attempts"] >= 1
    error = admin.mutate_error(REDELIVER, id=queued["id"])
    assert (error["code"], error["field"]) == ("CONFLICT", "deliveryId")
    assert len(deliveries(admin, webhook_id)) == 1


def test_kind_patterns_select_events(user: Callable[..., Client], receiver: Receiver) -> None:
    # given
    admin = user("root", "admin")
    comments, _ = create(admin, receiver.url("/comments"), ["comment.added"])
    statuses, _ = create(admin, receiver.url("/status"), ["case.status_changed", "article.*"])
    agent = user("alice", "agent")
    case = agent.mutate(CASE, s="Slow laptop")["case"]
    # when
    agent.mutate(COMMENT, id=case["id"], b="Looking")
    agent.mutate(STATUS, id=case["id"], st="OPEN")
    # then each endpoint gets exactly its kinds (internal ones included)
    got = sorted((r.path, r.json["event"]["kind"]) for r in (receiver.next(), receiver.next()))
    assert got == [("/comments", "comment.added"), ("/status", "case.status_changed")]
    assert receiver.nothing(1.0)
    assert [d["kind"] for d in deliveries(admin, comments)] == ["comment.added"]
    assert [d["kind"] for d in deliveries(admin, statuses)] == ["case.status_changed"]


def test_internal_events_are_delivered_and_inactive_webhooks_get_nothing(
    user: Callable[..., Client], receiver: Receiver
) -> None:
    admin = user("root", "admin")
    webhook_id, _ = create(admin, receiver.url(), ["case.assigned"])
    agent = user("alice", "agent")
    case = agent.mutate(CASE, s="Assign me")["case"]
    agent.mutate("""mutation($id: ID!) { caseAssign(input: {caseId: $id, assigneeId: "alice"}) {
      errors { code } } }""", id=case["id"])
    got = receiver.next().json["event"]
    assert got["kind"] == "case.assigned" and got["visibility"] == "INTERNAL"
    # when paused
    admin.mutate("""mutation($id: ID!) { webhookUpdate(input: {webhookId: $id, active: false}) {
      webhook { active } errors { code } } }""", id=webhook_id)
    agent.mutate("""mutation($id: ID!) { caseAssign(input: {caseId: $id, assigneeId: null}) {
      errors { code } } }""", id=case["id"])
    assert receiver.nothing(1.0)
    assert len(deliveries(admin, webhook_id)) == 1


def test_tenants_are_isolated(user: Callable[..., Client], receiver: Receiver) -> None:
    # given a webhook of everything in one tenant
    admin = user("root", "admin")
    webhook_id, _ = create(admin, receiver.url(), ["*"])
    own = receiver.next().json  # `webhook.created` of itself (the ping)
    assert own["event"]["kind"] == "webhook.created" and own["tenant"] == admin.tenant
    other = new_tenant()
    stranger_admin = user("root", "admin", tenant_id=other)
    # when another tenant works
    case = user("alice", "agent", tenant_id=other).mutate(CASE, s="Other tenant")["case"]
    user("alice", "agent", tenant_id=other).mutate(COMMENT, id=case["id"], b="secret stuff")
    # then nothing of it is delivered here, and the other tenant cannot see or touch this webhook
    assert receiver.nothing(1.0)
    assert stranger_admin.gql("query($id: ID!) { webhook(id: $id) { id } }", id=webhook_id)["webhook"] is None
    assert stranger_admin.gql("{ webhooks { edges { node { id } } } }")["webhooks"]["edges"] == []
    err = stranger_admin.raw(DELIVERIES, {"id": webhook_id})["errors"][0]
    assert err["extensions"]["code"] == "NOT_FOUND"
    delete = """mutation($id: ID!) { webhookDelete(input: {webhookId: $id}) { deletedWebhookId errors { code } } }"""
    assert stranger_admin.mutate_error(delete, id=webhook_id)["code"] == "NOT_FOUND"
    delivery_id = deliveries(admin, webhook_id)[0]["id"]
    assert stranger_admin.mutate_error(REDELIVER, id=delivery_id)["code"] == "NOT_FOUND"
    # and deleting it here drops it and its log
    assert admin.mutate(delete, id=webhook_id)["deletedWebhookId"] == webhook_id
    assert admin.gql("{ webhooks { edges { node { id } } } }")["webhooks"]["edges"] == []


def test_only_supervisors_and_admins_manage_webhooks(user: Callable[..., Client], receiver: Receiver) -> None:
    agent, customer, boss = user("alice", "agent"), user("carol", "customer"), user("sam", "supervisor")
    error = agent.mutate_error(CREATE, url=receiver.url(), kinds=["*"], max=None)
    assert error["code"] == "FORBIDDEN"
    webhook_id, _ = create(boss, receiver.url(), ["case.*"])
    for client in (agent, customer):
        assert client.gql("query($id: ID!) { webhook(id: $id) { id } }", id=webhook_id)["webhook"] is None
        assert client.raw("{ webhooks { edges { node { id } } } }")["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert client.raw(DELIVERIES, {"id": webhook_id})["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # the secret never comes back
    listed = boss.gql("{ webhooks { edges { node { id secretHint } } } }")["webhooks"]["edges"]
    assert [e["node"]["id"] for e in listed] == [webhook_id] and len(listed[0]["node"]["secretHint"]) == 4


def test_bad_input_is_refused_and_nothing_written(user: Callable[..., Client], receiver: Receiver) -> None:
    admin = user("root", "admin")
    cases = [
        ({"url": "ftp://example.com/x", "kinds": ["*"]}, "url"),
        ({"url": "http://user:pw@example.com/x", "kinds": ["*"]}, "url"),
        ({"url": receiver.url(), "kinds": []}, "kinds"),
        ({"url": receiver.url(), "kinds": ["Case Created"]}, "kinds"),
        ({"url": receiver.url(), "kinds": ["*"], "max": 0}, "maxAttempts"),
    ]
    for variables, field in cases:
        error = admin.mutate_error(CREATE, **{"max": None, **variables})
        assert (error["code"], error["field"]) == ("INVALID", field), error
    assert admin.gql("{ webhooks { edges { node { id } } } }")["webhooks"]["edges"] == []


def test_ssrf_guard_refuses_private_addresses() -> None:
    async def refused(url: str) -> bool:
        try:
            await check_url(url, allow_private_hosts=False)
        except UnsafeURL:
            return True
        return False

    async def main() -> None:
        for url in ("http://127.0.0.1:8000/x", "http://10.1.2.3/", "http://192.168.0.1/", "http://[::1]/",
                    "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://localhost/",
                    "http://[::ffff:127.0.0.1]/"):
            assert await refused(url), url
        assert not await refused("https://93.184.216.34/hook")  # a public address literal
        await check_url("http://127.0.0.1:9/x", allow_private_hosts=True)  # test/development

    asyncio.run(main())


def test_production_hub_refuses_loopback_webhooks(spawn_hub: Callable[..., HubProcess], tenant: str) -> None:
    secret = "p" * 40
    prod = spawn_hub(HUB_ENV="production", HUB_JWT_SECRET=secret)
    admin = Client(prod, "root", "admin", tenant)
    admin.http.headers["Authorization"] = "Bearer " + auth.mint(secret, sub="root", tenant=tenant, roles=["admin"])
    error = admin.mutate_error(CREATE, url=f"{prod.url}/healthz", kinds=["*"], max=None)
    assert (error["code"], error["field"]) == ("INVALID", "url")
    assert "non-public" in error["message"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt in range(1, 10):
        delay = backoff(attempt, 10.0, 3600.0)
        full = min(3600.0, 10.0 * 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
