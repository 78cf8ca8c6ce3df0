"""Hostile clients (OWASP GraphQL cheat sheet, matrix in docs/security.md): limits over HTTP and
WebSocket, batching, production hardening, error masking, rate limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from hub import auth
from hub.ratelimit import RateLimited, RateLimiter, hit
from tests.harness import Client, HubProcess, token

PROD_SECRET = "p" * 40
CREATE = 'mutation { caseCreate(input: {subject: "probe"}) { errors { code } case { id } } }'
SET_STATUS = """mutation($id: ID!) { caseSetStatus(input: {caseId: $id, status: OPEN}) {
  errors { code } case { status } } }"""
CASES = "{ cases { edges { node { id subject } } pageInfo { hasNextPage } } }"
# every level of `feedback { article }` adds two to the depth: 8 levels is past the limit of 12
DEEP = "{ article(id: \"x\") { " + "feedback { article { " * 8 + "id" + " } }" * 8 + " } }"
EXPLODING = """query($n: Int) { cases(first: $n) { edges { node { id
  comments(first: $n) { edges { node { id body author { id name } } } } } } } }"""


def aliases(n: int, prefix: str = "a") -> str:
    return " ".join(f"{prefix}{i}: __typename" for i in range(n))


@pytest.fixture(scope="module")
def tight(hub_env: dict[str, str], log_dir: Path) -> Iterator[HubProcess]:
    """A hub with tiny limits (every test here uses its own users, so budgets don't mix)."""
    process = HubProcess({**hub_env, **TIGHT}, log_dir).start()
    yield process
    process.kill()


TIGHT = {
    "HUB_RATE_LIMIT_PER_MIN": "5", "HUB_RATE_LIMIT_ANON_PER_MIN": "3",
    "HUB_RATE_LIMIT_SUBSCRIBE_PER_MIN": "3", "HUB_WS_MAX_OPERATIONS": "2",
    "HUB_WS_MAX_MESSAGE_BYTES": "20000", "HUB_WS_ALLOWED_ORIGINS": '["https://widget.example"]',
}


@contextmanager
def ws_open(hub: HubProcess, tok: str) -> Iterator[ClientConnection]:
    """An acknowledged graphql-transport-ws connection."""
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def ws_first(ws: ClientConnection, op_id: str, query: str, variables: dict[str, Any] | None = None,
             **kw: Any) -> dict[str, Any]:
    """Send one `subscribe` and return the first message answering it."""
    payload = {"query": query, "variables": {**(variables or {}), **kw}}
    ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message.get("id") == op_id:
            return message


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [(e.get("extensions") or {}).get("code") for e in errors]


# -- depth, aliases, tokens, cost -------------------------------------------------------------


def test_depth_alias_and_token_limits_over_http(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    assert "exceeds maximum operation depth" in alice.raw(DEEP)["errors"][0]["message"]
    assert "31 aliases" in alice.raw(f"{{ {aliases(31)} }}")["errors"][0]["message"]
    assert "errors" not in alice.raw(f"{{ {aliases(30)} }}")
    many_tokens = "{ " + "__typename " * 2100 + "}"
    assert "more than 2000 tokens" in alice.raw(many_tokens)["errors"][0]["message"]


@pytest.mark.parametrize("document", [
    # a named fragment spread twice: its 16 aliases count twice
    f"fragment F on Query {{ {aliases(16)} }} {{ ...F ...F }}",
    # inline fragments
    f"{{ ... on Query {{ {aliases(16)} }} ... on Query {{ {aliases(16, 'b')} }} }}",
    # nested spreads: F2 spreads F1, spread next to F1 again
    f"fragment F1 on Query {{ {aliases(16)} }} fragment F2 on Query {{ ...F1 }} {{ ...F1 ...F2 }}",
])
def test_aliases_hidden_in_fragments_are_counted(user: Callable[..., Client], document: str) -> None:
    alice = user("alice", "agent")
    body = alice.raw(document)
    assert "aliases found" in body["errors"][0]["message"], body


def test_cost_limit_refuses_exploding_connections(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    refused = alice.raw(EXPLODING, {"n": 100})
    assert codes(refused["errors"]) == ["QUERY_TOO_COMPLEX"] and refused.get("data") is None
    assert refused["errors"][0]["extensions"]["cost"] > refused["errors"][0]["extensions"]["maxCost"] == 5000
    # literal `first` and fragments are counted the same way
    via_fragment = """{ cases(first: 100) { ...E } } fragment E on CaseConnection { edges { node {
      ... on Case { comments(first: 100) { edges { node { id body } } } } } } }"""
    assert codes(alice.raw(via_fragment)["errors"]) == ["QUERY_TOO_COMPLEX"]
    # ordinary pages pass
    assert "errors" not in alice.raw(EXPLODING, {"n": 10})
    assert "errors" not in alice.raw(CASES)


def test_limits_hold_over_websocket(user: Callable[..., Client], hub: HubProcess) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE)["case"]["id"]
    sub = "subscription($id: ID!) { caseActivity(caseId: $id) { %s } }"
    with ws_open(hub, alice.token) as ws:
        over_aliased = ws_first(ws, "1", sub % aliases(31), id=case_id)
        assert over_aliased["type"] == "error" and "31 aliases" in over_aliased["payload"][0]["message"]
        fragments = f"fragment F on ActivityEvent {{ {aliases(16)} }} " + sub % "...F ...F"
        assert ws_first(ws, "2", fragments, id=case_id)["type"] == "error"
        deep = ws_first(ws, "3", DEEP.replace("{ article", "query { article", 1))
        assert deep["type"] == "error" and "depth" in deep["payload"][0]["message"]
        costly = ws_first(ws, "4", EXPLODING, n=100)
        assert costly["type"] == "error" and codes(costly["payload"]) == ["QUERY_TOO_COMPLEX"]
        # the connection is still usable: a fine subscription runs
        ws.send(json.dumps({"id": "5", "type": "subscribe", "payload": {
            "query": sub % "seq kind", "variables": {"id": case_id, "after": None}}}))
        assert ws_first(ws, "6", "{ viewer { id } }")["payload"]["data"] == {"viewer": {"id": "alice"}}
        # too many tokens: parsing stops, the operation gets an `error` (schema.limits.SafeParserCache)
        many_tokens = ws_first(ws, "7", "{ " + "__typename " * 2100 + "}")
        assert many_tokens["type"] == "error" and "more than 2000 tokens" in many_tokens["payload"][0]["message"]


# -- batching, CSRF ---------------------------------------------------------------------------


def test_batches_are_capped(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    ten = alice.http.post("/graphql", json=[{"query": "{ viewer { id } }"}] * 10)
    assert ten.status_code == 200 and [r["data"]["viewer"]["id"] for r in ten.json()] == ["alice"] * 10
    eleven = alice.http.post("/graphql", json=[{"query": "{ viewer { id } }"}] * 11)
    assert eleven.status_code == 400 and "Too many operations" in eleven.text


def test_no_mutations_over_get_and_no_form_posts(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    mutation = "mutation { caseCreate(input: {subject: \"csrf\"}) { case { id } } }"
    assert alice.http.get("/graphql", params={"query": mutation}).status_code in (400, 405)
    form = alice.http.post("/graphql", data={"query": mutation})
    assert form.status_code == 400
    assert alice.gql("{ cases { edges { node { id } } } }")["cases"]["edges"] == []


# -- production hardening ---------------------------------------------------------------------


def test_production_hides_the_schema(user: Callable[..., Client], spawn_hub: Callable[..., HubProcess]) -> None:
    # in test mode the schema is introspectable and suggestions help
    dev = user("alice", "agent")
    assert dev.gql("{ __schema { queryType { name } } }")["__schema"]["queryType"]["name"] == "Query"
    assert "Did you mean" in dev.raw("{ viewr { id } }")["errors"][0]["message"]
    prod = spawn_hub(HUB_ENV="production", HUB_JWT_SECRET=PROD_SECRET)
    tok = auth.mint(PROD_SECRET, sub="alice", tenant=dev.tenant, roles=["agent"])
    http = httpx.Client(base_url=prod.url, headers={"Authorization": f"Bearer {tok}"})
    for introspection in ("{ __schema { types { name } } }", "{ __type(name: \"Case\") { name } }"):
        body = http.post("/graphql", json={"query": introspection}).json()
        assert body.get("data") is None and "introspection" in body["errors"][0]["message"].lower()
    typo = http.post("/graphql", json={"query": "{ viewr { id } }"}).json()["errors"][0]["message"]
    assert "Cannot query field 'viewr'" in typo and "Did you mean" not in typo
    assert http.post("/graphql", json={"query": "{ viewer { id } }"}).json() == {"data": {"viewer": {"id": "alice"}}}
    assert "_debugFail" in dev.raw("{ _debugFail }")["errors"][0]["path"]
    assert "Cannot query field '_debugFail'" in http.post("/graphql", json={"query": "{ _debugFail }"}).text


# -- error masking ----------------------------------------------------------------------------


def test_unexpected_errors_are_masked_over_http(hub: HubProcess, user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    response = alice.http.post("/graphql", json={"query": "{ _debugFail viewer { id } }"})
    body = response.json()
    assert response.status_code == 200 and body["data"] == {"_debugFail": None, "viewer": {"id": "alice"}}
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        ("Internal server error", {"code": "INTERNAL"})]
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_errors_stay_masked_under_concurrency(hub: HubProcess, user: Callable[..., Client]) -> None:
    # shared extension instances once let one request's masking run on another's result
    alice = user("alice", "agent")
    async with httpx.AsyncClient(base_url=hub.url, headers={"Authorization": f"Bearer {alice.token}"}) as http:
        responses = await asyncio.gather(*[
            http.post("/graphql", json={"query": "query($d: Float!) { _debugFail(delay: $d) }",
                                        "variables": {"d": (i % 5) * 0.02}}) for i in range(40)])
    assert all(r.json()["errors"][0]["extensions"] == {"code": "INTERNAL"} for r in responses)
    assert not any("secret" in r.text for r in responses)


@pytest.mark.parametrize("before_first", [False, True])
def test_unexpected_errors_are_masked_in_subscriptions(
    hub: HubProcess, user: Callable[..., Client], before_first: bool
) -> None:
    alice = user("alice", "agent")
    with ws_open(hub, alice.token) as ws:
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($b: Boolean!) { _debugFail(beforeFirst: $b) }", "variables": {"b": before_first}}}))
        frames = []
        while not frames or frames[-1]["type"] not in ("complete", "error"):
            frames.append(json.loads(ws.recv(timeout=10)))
    text = json.dumps(frames)
    assert "secret" not in text and "Traceback" not in text, text
    errors = [e for f in frames for e in (f["payload"] if f["type"] == "error" else
                                          (f.get("payload") or {}).get("errors") or [])]
    assert [(e["message"], e["extensions"]["code"]) for e in errors] == [("Internal server error", "INTERNAL")]
    if not before_first:
        assert frames[0] == {"id": "1", "type": "next", "payload": {"data": {"_debugFail": 1}}}


# -- rate limits ------------------------------------------------------------------------------


def test_http_requests_are_rate_limited_per_user(tight: HubProcess, tenant: str) -> None:
    carol = Client(tight, "carol", "agent", tenant)
    statuses = [carol.http.post("/graphql", json={"query": "{ viewer { id } }"}) for _ in range(6)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429]
    refused = statuses[-1]
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert refused.json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry}
    # another user of the same IP has a budget of their own; a batch spends one per operation
    dave = Client(tight, "dave", "agent", tenant)
    assert dave.http.post("/graphql", json=[{"query": "{ viewer { id } }"}] * 5).status_code == 200
    assert dave.http.post("/graphql", json={"query": "{ viewer { id } }"}).status_code == 429


def test_anonymous_requests_are_rate_limited_per_ip(tight: HubProcess) -> None:
    def anonymous(ip: str) -> int:
        return httpx.post(f"{tight.url}/graphql", json={"query": "{ viewer { id } }"},
                          headers={"X-Forwarded-For": ip}).status_code

    assert [anonymous("203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert anonymous("203.0.113.8") == 401  # another client (behind the trusted proxy) is unaffected


def test_rate_limits_are_shared_across_processes(
    tight: HubProcess, hub_env: dict[str, str], spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    other = spawn_hub(**TIGHT)
    tok = token("erin", "agent", tenant)
    statuses = [httpx.post(f"{h.url}/graphql", json={"query": "{ viewer { id } }"},
                           headers={"Authorization": f"Bearer {tok}"}).status_code
                for h in [tight, other] * 3]
    assert statuses == [200] * 5 + [429]


def test_subscribes_are_rate_limited_and_capped_per_connection(tight: HubProcess, tenant: str) -> None:
    frank = Client(tight, "frank", "agent", tenant)
    case_id = frank.mutate(CREATE)["case"]["id"]
    live = {"query": "subscription($id: ID!) { caseActivity(caseId: $id) { seq } }", "variables": {"id": case_id}}
    sub = "subscription { _debugFail }"
    with ws_open(tight, frank.token) as ws:
        # at most 2 operations open at once on one connection (HUB_WS_MAX_OPERATIONS)
        for op_id in ("1", "2"):
            ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": live}))
        time.sleep(0.3)
        capped = ws_first(ws, "3", sub)
        assert capped["type"] == "error" and "limit" in capped["payload"][0]["message"].lower()
        frank.mutate(SET_STATUS, id=case_id)  # the two open ones are live and well
        seen = {json.loads(ws.recv(timeout=10))["id"] for _ in range(2)}
        assert seen == {"1", "2"}
    with ws_open(tight, frank.token) as ws:  # the 4th subscribe within a minute (limit 3) is refused
        limited = ws_first(ws, "4", sub)
    assert limited["type"] == "error" and limited["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert limited["payload"][0]["extensions"]["retryAfter"] >= 1


def test_oversized_websocket_messages_close_the_connection(tight: HubProcess, tenant: str) -> None:
    with ws_open(tight, token("gina", "agent", tenant)) as ws:
        padding = "#" * 30_000  # HUB_WS_MAX_MESSAGE_BYTES=20000
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": f"{{ viewer {{ id }} }} {padding}"}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_websocket_origin_allow_list(tight: HubProcess, tenant: str) -> None:
    tok = token("hana", "agent", tenant)
    with pytest.raises(InvalidStatus) as refused:
        connect(tight.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                additional_headers={"Origin": "https://evil.example"}, open_timeout=5)
    assert refused.value.response.status_code == 403
    for origin in ("https://widget.example", tight.url, None):  # listed, same origin, not a browser
        headers = {"Origin": origin} if origin else {}
        with connect(tight.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                     additional_headers=headers, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
            assert json.loads(ws.recv(timeout=5))["type"] == "connection_ack"


async def test_hit_helper_shares_budgets_through_redis(redis_url: str) -> None:
    # two limiters stand for two hub processes
    one, two = RateLimiter(redis_url), RateLimiter(redis_url)
    hubs = [_FakeHub(one), _FakeHub(two)]
    key = f"forum:t:{time.time_ns()}"
    for i in range(4):
        await hit(hubs[i % 2], key, 4, 3600)
    with pytest.raises(RateLimited) as refused:
        await hit(hubs[0], key, 4, 3600)
    assert refused.value.code.value == "RATE_LIMITED" and 1 <= refused.value.retry_after <= 3600
    assert one.shared and one.fallbacks == 0


async def test_limiter_falls_back_to_memory_when_redis_is_down() -> None:
    dead = RateLimiter("redis://127.0.0.1:1")  # nothing listens on port 1
    started = time.monotonic()
    results = [await dead.acquire("k", 2, 60) for _ in range(3)]
    assert results[:2] == [None, None] and results[2] is not None
    assert dead.fallbacks == 1 and not dead.shared and time.monotonic() - started < 2


class _FakeHub:
    """Just what `ratelimit.hit` reads: `extras` holding the process's limiter."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.extras: dict[str, object] = {"ratelimiter": limiter}
        self.settings = None


def test_debug_fields_exist_only_in_test_mode() -> None:
    from hub.settings import Settings
    from schema import build

    assert "_debugFail" in build(Settings(env="test")).as_str()
    assert "_debugFail" not in build(Settings(env="development")).as_str()
