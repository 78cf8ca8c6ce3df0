"""The fan-out fast path (hub/fanout.py, schema/fanout.py): payloads rendered once per event and
group are exactly those strawberry renders per subscriber, for every audience, selection set and
variable; the path is really taken where it may be, and not where it may not."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from inspect import isawaitable
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.harness import Client, GraphQLErrors, HubProcess, Subscription
from tests.test_activity import ASSIGN, CASE_ACTIVITY, CREATE, FOLLOW, SET_STATUS, UNFOLLOW, all_history

COMMENT = """mutation($id: ID!, $b: String!, $v: Visibility) { commentAdd(input: {subjectId: $id, body: $b,
  visibility: $v}) { errors { code } } }"""

# Documents a client may send for the same stream: every shape the fast path must get right.
DOCUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("""subscription($id: ID!) { caseActivity(caseId: $id) {
        id seq cursor stream kind visibility summary occurredAt data actor { id } } }""", {}),
    "aliases": ("""subscription S($id: ID!) { ev: caseActivity(caseId: $id) {
        n: seq k: kind __typename who: actor { __typename uid: id } } }""", {}),
    "fragments": ("""subscription($id: ID!) { caseActivity(caseId: $id) { ...Head ... on ActivityEvent { data } } }
        fragment Head on ActivityEvent { seq kind visibility actor { ...Who } }
        fragment Who on User { id name roles }""", {}),
    "include-on": ("""subscription($id: ID!, $full: Boolean!) { caseActivity(caseId: $id) {
        seq summary @include(if: $full) data @skip(if: $full) } }""", {"full": True}),
    "include-off": ("""subscription($id: ID!, $full: Boolean!) { caseActivity(caseId: $id) {
        seq summary @include(if: $full) data @skip(if: $full) } }""", {"full": False}),
    "named-of-two": ("""query Other { viewer { id } }
        subscription Live($id: ID!) { caseActivity(caseId: $id) { seq kind actor { id name } } }""", {}),
    "viewer-dependent": ("""subscription($id: ID!) { caseActivity(caseId: $id) {
        seq actor { id online } } }""", {}),
}
OPERATION_NAMES = {"named-of-two": "Live"}


def gauge(hub: HubProcess, name: str) -> float:
    """A gauge of the hub's /metrics (the fan-out gauges are refreshed by the scrape)."""
    text = httpx.get(f"{hub.url}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


@contextmanager
def raw_socket(hub: HubProcess, client: Client) -> Iterator[ClientConnection]:
    """An acknowledged graphql-transport-ws connection (operations are up to the test)."""
    with connect(hub.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def subscribe(ws: ClientConnection, op_id: str, query: str, operation_name: str | None = None,
              **variables: Any) -> None:
    payload: dict[str, Any] = {"query": query, "variables": variables}
    if operation_name:
        payload["operationName"] = operation_name
    ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))


def frames(ws: ClientConnection, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next `n` operation messages (`next`/`error`/`complete`), pings answered."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = json.loads(ws.recv(timeout=timeout))
        if message["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
        elif message["type"] != "pong":
            out.append(message)
    return out


def wait_followers(hub: HubProcess, at_least: int) -> None:
    deadline = time.monotonic() + 10
    while gauge(hub, "hub_fanout_followers") < at_least:
        assert time.monotonic() < deadline, "subscribers never went live on the fast path"
        time.sleep(0.05)


def busy_case(alice: Client, carol: Client, case_id: str) -> None:
    """PUBLIC and INTERNAL events of several kinds and actors."""
    alice.mutate(ASSIGN, id=case_id, to="alice")  # INTERNAL
    carol.mutate(COMMENT, id=case_id, b="It still drops", v="PUBLIC")  # PUBLIC, by the customer
    alice.mutate(COMMENT, id=case_id, b="internal note", v="INTERNAL")  # INTERNAL
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")  # PUBLIC
    alice.mutate(UNFOLLOW, id=case_id)  # INTERNAL
    alice.mutate(SET_STATUS, id=case_id, s="PENDING")  # PUBLIC


def test_fast_path_payloads_are_exactly_the_per_subscriber_ones(
    hub: HubProcess, spawn_hub: Callable[..., HubProcess], user: Callable[..., Client]
) -> None:
    # given a legacy hub (strawberry per subscriber) next to the fast one, on one store and Redis
    legacy = spawn_hub(HUB_WS_FANOUT="0")
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="VPN drops")["case"]["id"]
    alice.mutate(FOLLOW, id=case_id)
    viewers = {"customer": carol, "agent": alice}
    with ExitStack() as stack:
        sockets: dict[tuple[str, str, str], ClientConnection] = {}
        # when every document is subscribed by a customer and an agent on both hubs
        for where, process in (("fast", hub), ("legacy", legacy)):
            for who, client in viewers.items():
                for name, (document, variables) in DOCUMENTS.items():
                    ws = stack.enter_context(raw_socket(process, client))
                    subscribe(ws, "op-1", document, OPERATION_NAMES.get(name), id=case_id, **variables)
                    sockets[where, who, name] = ws
        wait_followers(hub, 2 * len(DOCUMENTS))
        assert gauge(legacy, "hub_fanout_followers") == 0
        busy_case(alice, carol, case_id)
        # then each gets the same frames from both, customers only the PUBLIC events
        got = {key: frames(ws, 3 if key[1] == "customer" else 6) for key, ws in sockets.items()}
    for who in viewers:
        for name in DOCUMENTS:
            fast, slow = got["fast", who, name], got["legacy", who, name]
            assert fast == slow, (who, name)
            assert all(f["type"] == "next" and f["id"] == "op-1" and "errors" not in f["payload"] for f in fast)
    seqs = [f["payload"]["data"]["caseActivity"]["seq"] for f in got["fast", "agent", "plain"]]
    assert seqs == [3, 4, 5, 6, 7, 8]
    public = [f["payload"]["data"]["caseActivity"] for f in got["fast", "customer", "plain"]]
    assert [(e["seq"], e["visibility"]) for e in public] == [(4, "PUBLIC"), (6, "PUBLIC"), (8, "PUBLIC")]
    aliased = got["fast", "agent", "aliases"][0]["payload"]["data"]
    assert aliased == {"ev": {"n": 3, "k": "case.assigned", "__typename": "ActivityEvent",
                              "who": {"__typename": "User", "uid": "alice"}}}
    on, off = got["fast", "agent", "include-on"][0], got["fast", "agent", "include-off"][0]
    assert set(on["payload"]["data"]["caseActivity"]) == {"seq", "summary"}
    assert set(off["payload"]["data"]["caseActivity"]) == {"seq", "data"}
    named = got["fast", "customer", "named-of-two"][0]["payload"]["data"]["caseActivity"]
    assert named["actor"]["id"] == "carol" and named["kind"] == "comment.added"
    # `online` depends on the viewer (rendered per identity, still equal to the legacy path above)
    assert set(got["fast", "customer", "viewer-dependent"][0]["payload"]["data"]["caseActivity"]["actor"]) == {
        "id", "online"}


def test_many_subscribers_on_two_processes_get_every_event_once_in_their_audience(
    hub: HubProcess, spawn_hub: Callable[..., HubProcess], user: Callable[..., Client]
) -> None:
    # given 24 subscribers of one case, customers and agents, spread over two processes
    other = spawn_hub()
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="Printer on fire")["case"]["id"]
    alice.mutate(FOLLOW, id=case_id)
    with ExitStack() as stack:
        subs: list[tuple[str, Subscription]] = []
        for i in range(24):
            client = carol if i % 3 == 0 else user(f"agent{i}", "agent")
            process = hub if i % 2 else other
            subs.append(("customer" if client is carol else "agent",
                         stack.enter_context(client.subscribe(CASE_ACTIVITY, hub=process, id=case_id))))
        wait_followers(hub, 12)
        wait_followers(other, 12)
        # when 30 events are written through both processes, a third of them INTERNAL
        writers = [alice, Client(other, "alice", "agent", alice.tenant)]
        for i in range(30):
            writer = writers[i % 2]
            writer.mutate(COMMENT, id=case_id, b=f"note {i}", v="INTERNAL" if i % 3 == 0 else "PUBLIC")
        # then every agent got all 30 in order, every customer exactly the 20 PUBLIC ones
        for audience, sub in subs:
            expected = [3 + i for i in range(30) if audience == "agent" or i % 3]
            events = [e["caseActivity"] for e in sub.take(len(expected))]
            assert [e["seq"] for e in events] == expected
            assert audience == "agent" or {e["visibility"] for e in events} == {"PUBLIC"}
            assert sub.nothing(0.05)


def test_operations_on_one_connection_keep_their_ids_and_complete_independently(
    hub: HubProcess, user: Callable[..., Client]
) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="Two tabs")["case"]["id"]
    seq_only, kinds = DOCUMENTS["include-off"][0], DOCUMENTS["aliases"][0]
    with raw_socket(hub, alice) as ws:
        # given two operations on one connection, with different selections
        subscribe(ws, "a", seq_only, id=case_id, full=False)
        subscribe(ws, "b", kinds, id=case_id)
        wait_followers(hub, 2)
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        first = frames(ws, 2)
        assert {f["id"] for f in first} == {"a", "b"}
        by_id = {f["id"]: f["payload"]["data"] for f in first}
        assert by_id["a"] == {"caseActivity": {"seq": 2, "data": {"from": "NEW", "to": "OPEN"}}}
        assert by_id["b"]["ev"]["n"] == 2
        # when one completes, then only the other keeps receiving
        ws.send(json.dumps({"id": "a", "type": "complete"}))
        time.sleep(0.2)
        alice.mutate(SET_STATUS, id=case_id, s="PENDING")
        (only,) = frames(ws, 1)
        assert only["id"] == "b" and only["payload"]["data"]["ev"]["n"] == 3
        # and the freed id can be reused at once
        subscribe(ws, "a", seq_only, id=case_id, full=True)
        wait_followers(hub, 2)
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        again = {f["id"]: f["payload"]["data"] for f in frames(ws, 2)}
        assert again["a"]["caseActivity"]["seq"] == 4 and "summary" in again["a"]["caseActivity"]


def test_ineligible_operations_take_the_ordinary_path_and_still_work(
    hub: HubProcess, user: Callable[..., Client]
) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Odd documents")["case"]["id"]
    before = gauge(hub, "hub_fanout_followers")
    via_fragment = """subscription($id: ID!) { ...Root } fragment Root on Subscription {
        caseActivity(caseId: $id) { seq kind } }"""
    with alice.subscribe(via_fragment, id=case_id) as sub:
        time.sleep(0.3)
        assert gauge(hub, "hub_fanout_followers") == before  # not on the fast path
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        assert sub.next()["caseActivity"] == {"seq": 2, "kind": "case.status_changed"}
    # a document strawberry refuses is refused the same way (validation runs before the fast path)
    with alice.subscribe("subscription($id: ID!) { caseActivity(caseId: $id) { nope } }", id=case_id) as bad:
        with pytest.raises(GraphQLErrors):
            bad.next()


def test_resume_while_events_are_written_has_no_gap_and_no_duplicate(
    hub: HubProcess, user: Callable[..., Client]
) -> None:
    # given a case with history, and a writer adding to it all the time
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Busy")["case"]["id"]
    for i in range(10):
        alice.mutate(COMMENT, id=case_id, b=f"old {i}", v="PUBLIC")
    cursor = all_history(alice, f"case:{case_id}")[0]["cursor"]
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set() and i < 60:
            alice.mutate(COMMENT, id=case_id, b=f"new {i}", v="PUBLIC")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        # when subscribers resume from the first event while it writes (replay overlaps live)
        with ExitStack() as stack:
            subs = [stack.enter_context(alice.subscribe(CASE_ACTIVITY, id=case_id, after=cursor)) for _ in range(4)]
            time.sleep(0.5)
            stop.set()
            writer.join()
            total = len(all_history(alice, f"case:{case_id}"))
            # then each sees 2..total exactly once, in order, and nothing after
            for sub in subs:
                assert [e["caseActivity"]["seq"] for e in sub.take(total - 1, timeout=20)] == list(range(2, total + 1))
                assert sub.nothing(0.3)
    finally:
        stop.set()
        writer.join()


def test_each_event_is_rendered_once_per_group_not_once_per_subscriber(
    hub: HubProcess, user: Callable[..., Client]
) -> None:
    # given 12 agents and 4 customer connections on one case, all with the same document
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="Popular case")["case"]["id"]
    with ExitStack() as stack:
        subs = [stack.enter_context((carol if i % 4 == 0 else user(f"agent{i}", "agent")).subscribe(
            CASE_ACTIVITY, id=case_id)) for i in range(16)]
        wait_followers(hub, 16)
        renders, delivered = gauge(hub, "hub_fanout_renders_total"), gauge(hub, "hub_events_delivered_total")
        frames, direct = gauge(hub, "hub_fanout_frames_total"), gauge(hub, "hub_fanout_direct_writes_total")
        # when three PUBLIC events happen
        for status in ("OPEN", "PENDING", "OPEN"):
            alice.mutate(SET_STATUS, id=case_id, s=status)
        for sub in subs:
            assert [e["caseActivity"]["seq"] for e in sub.take(3)] == [2, 3, 4]
        # then each was executed twice (agents, customers), framed once per group (every client
        # here uses operation id "1"), and the same bytes written straight to 16 sockets
        assert gauge(hub, "hub_fanout_renders_total") - renders == 3 * 2
        assert gauge(hub, "hub_fanout_frames_total") - frames == 3 * 2
        assert gauge(hub, "hub_events_delivered_total") - delivered == 3 * 16
        assert gauge(hub, "hub_fanout_direct_writes_total") - direct == 3 * 16


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_frames_framed_once_are_what_the_websocket_library_frames(size: int) -> None:
    # the direct wire (hub.fanout.DirectWire) writes bytes framed once for every socket: they must
    # be exactly the server-side text frame the sans-I/O protocol would have written
    from websockets.frames import Frame, Opcode

    from hub.fanout import text_frame

    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


async def test_per_event_execution_keeps_no_memory_across_events() -> None:
    # graphql-core 3.3's per-event executors shared one subfield memo keyed by per-event lists:
    # every event of every subscription leaked ~3 KB (schema.fanout gives each its own memo)
    from graphql import Executor, execute_subscription_event, parse

    from hub.events import Event, Visibility
    from schema import build
    from schema.activity import ActivityEvent

    document = parse("subscription($id: ID!) { caseActivity(caseId: $id) { seq actor { id } data } }")
    base = Executor.build(build()._schema, document, raw_variable_values={"id": "case_1"})
    assert isinstance(base, Executor)
    for seq in range(1, 51):
        event = Event(id=f"evt_{seq}", tenant="t", stream="case:case_1", seq=seq, kind="case.updated",
                      actor_id="alice", actor_name="Alice", occurred_at=datetime.now(UTC),
                      visibility=Visibility.PUBLIC, summary="s", data={"n": seq})
        result = execute_subscription_event(base.build_per_event_executor(ActivityEvent.of(event)))
        if isawaitable(result):
            result = await result
        assert result.data == {"caseActivity": {"seq": seq, "actor": {"id": "alice"}, "data": {"n": seq}}}
    assert len(base._relevant_sub_fields) == 0


def counter(hub: HubProcess, name: str, **labels: str) -> float:
    """A counter of the hub's /metrics (0 before its first increment)."""
    text = httpx.get(f"{hub.url}/metrics", timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def until_done(ws: ClientConnection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every operation message up to the operation's `error` or `complete` (or the socket closing:
    then a `closed` pseudo-message with the close code and reason)."""
    from websockets.exceptions import ConnectionClosed

    out: list[dict[str, Any]] = []
    while not out or out[-1]["type"] not in ("complete", "error", "closed"):
        try:
            out += frames(ws, 1, timeout)
        except ConnectionClosed as closed:
            out.append({"type": "closed", "code": ws.close_code, "reason": ws.close_reason, "exc": str(closed)})
    return out


def test_lean_path_refuses_like_strawberry(
    hub: HubProcess, spawn_hub: Callable[..., HubProcess], user: Callable[..., Client]
) -> None:
    # given a fan-out hub and a legacy one (strawberry per subscriber), with a low cost limit
    fast, legacy = spawn_hub(HUB_MAX_COST="6"), spawn_hub(HUB_MAX_COST="6", HUB_WS_FANOUT="0")
    carol, alice, dave = user("carol", "customer"), user("alice", "agent"), user("dave", "customer")
    case_id = carol.mutate(CREATE, s="Refusals")["case"]["id"]
    fine = "subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) { seq kind } }"
    cases: dict[str, tuple[Client, str, dict[str, Any]]] = {
        "validation": (alice, "subscription($id: ID!) { caseActivity(caseId: $id) { seq nope } }", {"id": case_id}),
        "too complex": (alice, """subscription($id: ID!) { caseActivity(caseId: $id) {
            id seq cursor kind summary stream visibility } }""", {"id": case_id}),
        "aliases": (alice, "subscription($id: ID!) { caseActivity(caseId: $id) { "
                    + " ".join(f"a{i}: seq" for i in range(31)) + " } }", {"id": case_id}),
        "syntax": (alice, "subscription($id: ID!) { caseActivity(caseId: $id) { seq }", {"id": case_id}),
        "variables": (alice, fine, {"id": None}),
        "wrong variable type": (alice, fine, {"id": case_id, "after": 5}),
        "someone else's case": (dave, fine, {"id": case_id}),
        "no such case": (alice, fine, {"id": "case_nope"}),
        "bad cursor": (alice, fine, {"id": case_id, "after": "garbage"}),
        "cursor of another stream": (alice, fine, {"id": case_id, "after": all_history(
            alice, f"case:{alice.mutate(CREATE, s='Other')['case']['id']}")[0]["cursor"]}),
    }
    lean = counter(fast, "hub_fanout_lean_subscriptions_total")
    # when each is subscribed on both
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for where, process in (("fast", fast), ("legacy", legacy)):
        for name, (client, document, variables) in cases.items():
            with raw_socket(process, client) as ws:
                ws.send(json.dumps({"id": "op-1", "type": "subscribe",
                                    "payload": {"query": document, "variables": variables}}))
                got[where, name] = until_done(ws)
    # then the fast hub answers each exactly as strawberry does, and none took the lean path
    for name in cases:
        assert got["fast", name] == got["legacy", name], name
        assert got["fast", name][-1]["type"] in ("error", "complete", "closed"), name
    assert got["fast", "too complex"][0]["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert [f["type"] for f in got["fast", "no such case"]] == ["next", "complete"]
    assert got["fast", "no such case"][0]["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert got["fast", "bad cursor"][0]["payload"]["errors"][0]["extensions"]["code"] == "INVALID"
    assert counter(fast, "hub_fanout_lean_subscriptions_total") == lean
    assert gauge(fast, "hub_fanout_followers") == 0 and gauge(fast, "hub_subscriptions") == 0


def test_lean_path_is_taken_for_eligible_subscriptions_only(
    hub: HubProcess, user: Callable[..., Client]
) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Lean")["case"]["id"]
    lean = counter(hub, "hub_fanout_lean_subscriptions_total")
    operations = counter(hub, "hub_graphql_operations_total", type="subscription")
    # given an eligible subscription and one whose root field comes through a fragment
    via_fragment = """subscription($id: ID!) { ...Root } fragment Root on Subscription {
        caseActivity(caseId: $id) { seq kind } }"""
    with alice.subscribe(CASE_ACTIVITY, id=case_id) as sub, alice.subscribe(via_fragment, id=case_id) as other:
        wait_followers(hub, 1)
        time.sleep(0.3)  # (the other one is on strawberry's path: no follower)
        # then only the first is served by the lean path, and each counts as one operation
        assert counter(hub, "hub_fanout_lean_subscriptions_total") == lean + 1
        assert counter(hub, "hub_graphql_operations_total", type="subscription") == operations + 2
        assert gauge(hub, "hub_subscriptions") >= 2
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        assert sub.next()["caseActivity"]["seq"] == 2
        assert other.next()["caseActivity"] == {"seq": 2, "kind": "case.status_changed"}


def test_lean_replay_after_cursor_then_live_has_no_gap_and_no_duplicate(
    hub: HubProcess, spawn_hub: Callable[..., HubProcess], user: Callable[..., Client]
) -> None:
    # given a case with history seen by a customer and an agent, and a legacy hub beside
    legacy = spawn_hub(HUB_WS_FANOUT="0")
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="Replay")["case"]["id"]
    alice.mutate(FOLLOW, id=case_id)
    busy_case(alice, carol, case_id)
    cursor = all_history(alice, f"case:{case_id}")[1]["cursor"]  # after seq 2
    document = DOCUMENTS["plain"][0].replace("($id: ID!)", "($id: ID!, $after: String)").replace(
        "(caseId: $id)", "(caseId: $id, after: $after)")
    lean = counter(hub, "hub_fanout_lean_subscriptions_total")
    with ExitStack() as stack:
        sockets: dict[tuple[str, str], ClientConnection] = {}
        # when both resume from the cursor on both hubs
        for where, process in (("fast", hub), ("legacy", legacy)):
            for who, client in (("customer", carol), ("agent", alice)):
                ws = sockets[where, who] = stack.enter_context(raw_socket(process, client))
                subscribe(ws, "r", document, id=case_id, after=cursor)
        replayed = {key: frames(ws, 3 if key[1] == "customer" else 6) for key, ws in sockets.items()}
        wait_followers(hub, 2)
        assert counter(hub, "hub_fanout_lean_subscriptions_total") == lean + 2
        # and the case goes on changing
        alice.mutate(COMMENT, id=case_id, b="live internal", v="INTERNAL")
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        live = {key: frames(ws, 1 if key[1] == "customer" else 2) for key, ws in sockets.items()}
        for ws in sockets.values():
            with pytest.raises(TimeoutError):
                frames(ws, 1, timeout=0.3)
    # then each got the replay then live, every event of its audience once, in order, the same
    # frames as strawberry renders per subscriber
    for who in ("customer", "agent"):
        assert replayed["fast", who] + live["fast", who] == replayed["legacy", who] + live["legacy", who], who
    seqs = [f["payload"]["data"]["caseActivity"]["seq"] for f in replayed["fast", "agent"] + live["fast", "agent"]]
    assert seqs == list(range(3, 11))
    public = [f["payload"]["data"]["caseActivity"] for f in replayed["fast", "customer"] + live["fast", "customer"]]
    assert [(e["seq"], e["visibility"]) for e in public] == [(4, "PUBLIC"), (6, "PUBLIC"), (8, "PUBLIC"),
                                                            (10, "PUBLIC")]


def test_complete_from_the_client_frees_the_lean_follower(hub: HubProcess, user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE, s="Complete")["case"]["id"]
    lean = counter(hub, "hub_fanout_lean_subscriptions_total")
    with raw_socket(hub, alice) as ws:
        # given a lean subscription
        subscribe(ws, "x", CASE_ACTIVITY, id=case_id)
        wait_followers(hub, 1)
        assert counter(hub, "hub_fanout_lean_subscriptions_total") == lean + 1
        # when the client completes it
        ws.send(json.dumps({"id": "x", "type": "complete"}))
        deadline = time.monotonic() + 10
        while gauge(hub, "hub_fanout_followers") or gauge(hub, "hub_subscriptions"):
            assert time.monotonic() < deadline, "the follower was not freed"
            time.sleep(0.05)
        # then it gets nothing more, and the id is free again on the same connection
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        with pytest.raises(TimeoutError):
            frames(ws, 1, timeout=0.5)
        subscribe(ws, "x", CASE_ACTIVITY, id=case_id)
        wait_followers(hub, 1)
        alice.mutate(SET_STATUS, id=case_id, s="PENDING")
        (again,) = frames(ws, 1)
        assert again["id"] == "x" and again["payload"]["data"]["caseActivity"]["seq"] == 3
    # and closing the connection frees it too
    deadline = time.monotonic() + 10
    while gauge(hub, "hub_fanout_followers") or gauge(hub, "hub_subscriptions"):
        assert time.monotonic() < deadline, "the follower was not freed on disconnect"
        time.sleep(0.05)
