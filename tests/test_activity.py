"""Activity streams through the public API: history pages, replay, audience, order, expiry, pruning."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.harness import Client, GraphQLErrors, HubProcess

CREATE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code message } case { id } } }"""
SET_STATUS = """mutation($id: ID!, $s: CaseStatus!) {
  caseSetStatus(input: {caseId: $id, status: $s}) { errors { code message } case { status } } }"""
FOLLOW = "mutation($id: ID!) { caseFollow(input: {caseId: $id}) { errors { code message } case { id } } }"
UNFOLLOW = "mutation($id: ID!) { caseUnfollow(input: {caseId: $id}) { errors { code message } case { id } } }"
ASSIGN = """mutation($id: ID!, $to: ID) { caseAssign(input: {caseId: $id, assigneeId: $to}) {
  errors { code message } case { id } } }"""
HISTORY = """query($s: ID!, $after: String, $first: Int) { activity(stream: $s, after: $after, first: $first) {
  edges { cursor node { id seq cursor stream kind visibility summary occurredAt actor { id } data } }
  pageInfo { hasNextPage endCursor } } }"""
CASE_ACTIVITY = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  seq cursor kind visibility } }"""
ARTICLE_ACTIVITY = """subscription($id: ID!, $after: String) { articleActivity(articleId: $id, after: $after) {
  seq cursor kind } }"""


def all_history(client: Client, stream: str, first: int = 100) -> list[dict[str, Any]]:
    """Every event of `stream` the client may read, paging with `first`."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = client.gql(HISTORY, s=stream, after=after, first=first)["activity"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def staffed_case(user: Callable[..., Client]) -> tuple[Client, Client, str]:
    """Carol (customer) opens a case; Alice (agent) is known to the tenant."""
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE, s="VPN drops")["case"]["id"]
    alice.mutate(FOLLOW, id=case_id)  # INTERNAL, and makes alice a known user
    return carol, alice, case_id


def test_history_pages_in_order_with_opaque_cursors_and_audience(user: Callable[..., Client]) -> None:
    # given a case with public and internal events
    carol, alice, case_id = staffed_case(user)
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    alice.mutate(ASSIGN, id=case_id, to="alice")
    alice.mutate(SET_STATUS, id=case_id, s="PENDING")
    stream = f"case:{case_id}"
    # when staff page through it two at a time
    staff = all_history(alice, stream, first=2)
    # then every event comes once, in seq order, with the contract's fields
    assert [e["seq"] for e in staff] == [1, 2, 3, 4, 5]
    assert [e["kind"] for e in staff] == [
        "case.created", "case.followed", "case.status_changed", "case.assigned", "case.status_changed"]
    assert staff[0]["actor"]["id"] == "carol" and staff[2]["actor"]["id"] == "alice"
    assert staff[2]["data"] == {"from": "NEW", "to": "OPEN"} and staff[2]["stream"] == stream
    assert len({e["cursor"] for e in staff}) == len({e["id"] for e in staff}) == 5
    # and the customer reads only the PUBLIC ones, paged the same way
    public = all_history(carol, stream, first=1)
    assert [e["seq"] for e in public] == [1, 3, 5]
    assert {e["visibility"] for e in public} == {"PUBLIC"}
    # resuming from a cursor gives what follows it
    after_two = alice.gql(HISTORY, s=stream, after=staff[1]["cursor"], first=10)["activity"]
    assert [e["node"]["seq"] for e in after_two["edges"]] == [3, 4, 5]
    assert after_two["pageInfo"] == {"hasNextPage": False, "endCursor": staff[4]["cursor"]}


def test_bad_cursors_and_unknown_streams_are_refused(user: Callable[..., Client]) -> None:
    carol, alice, case_id = staffed_case(user)
    other = alice.mutate(CREATE, s="Other")["case"]["id"]
    foreign = all_history(alice, f"case:{other}")[0]["cursor"]
    for bad in ("garbage", foreign):
        with pytest.raises(GraphQLErrors) as refused:
            alice.gql(HISTORY, s=f"case:{case_id}", after=bad)
        assert refused.value.codes == ["INVALID"]
    for stream in ("case:case_nope", "nokind:1", "case:", f"user:{carol.sub}"):
        with pytest.raises(GraphQLErrors) as missing:
            alice.gql(HISTORY, s=stream)
        assert missing.value.codes == ["NOT_FOUND"]
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after="garbage") as sub:
        with pytest.raises(GraphQLErrors) as bad_sub:
            sub.next()
    assert bad_sub.value.codes == ["INVALID"]


def test_replay_after_disconnect_returns_exactly_the_missed_events(user: Callable[..., Client]) -> None:
    # given a subscriber that saw the first events, then disconnected
    carol, alice, case_id = staffed_case(user)
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=None) as sub:
        time.sleep(0.3)  # live on the hub (no cursor: nothing is replayed)
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        seen = sub.next()["caseActivity"]
    assert seen["seq"] == 3
    # when more happens while it is away
    for status in ("PENDING", "OPEN", "SOLVED"):
        alice.mutate(SET_STATUS, id=case_id, s=status)
    # then resuming from its last cursor replays exactly those, in order, then goes live
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=seen["cursor"]) as sub:
        replayed = [e["caseActivity"] for e in sub.take(3)]
        assert [e["seq"] for e in replayed] == [4, 5, 6]
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        assert sub.next()["caseActivity"]["seq"] == 7
        assert sub.nothing(0.5)
    # and a customer resuming from the start replays only PUBLIC events
    with carol.subscribe(CASE_ACTIVITY, id=case_id, after=all_history(carol, f"case:{case_id}")[0]["cursor"]) as sub:
        assert [e["caseActivity"]["seq"] for e in sub.take(5)] == [3, 4, 5, 6, 7]
        assert sub.nothing(0.5)


def test_customer_never_receives_an_internal_event(user: Callable[..., Client]) -> None:
    # given a customer and an agent live on the same case
    carol, alice, case_id = staffed_case(user)
    with carol.subscribe(CASE_ACTIVITY, id=case_id) as customer, alice.subscribe(CASE_ACTIVITY, id=case_id) as agent:
        time.sleep(0.3)
        # when internal and public things happen
        alice.mutate(ASSIGN, id=case_id, to="alice")  # INTERNAL
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")  # PUBLIC
        alice.gql("""mutation($id: ID!) { commentAdd(input: {subjectId: $id, body: "internal note",
          visibility: INTERNAL}) { errors { code } } }""", id=case_id)  # INTERNAL
        alice.mutate(UNFOLLOW, id=case_id)  # INTERNAL
        alice.mutate(SET_STATUS, id=case_id, s="PENDING")  # PUBLIC
        # then the agent gets all five, the customer only the public two
        staff = [e["caseActivity"] for e in agent.take(5)]
        public = [e["caseActivity"] for e in customer.take(2)]
        assert customer.nothing(0.5)
    assert [e["seq"] for e in staff] == [3, 4, 5, 6, 7]
    assert [(e["seq"], e["visibility"]) for e in public] == [(4, "PUBLIC"), (7, "PUBLIC")]


def test_concurrent_writers_produce_a_gap_free_sequence(user: Callable[..., Client]) -> None:
    # given a case, a live subscriber, and four agents
    _, alice, case_id = staffed_case(user)
    writers = [user(f"agent{i}", "agent") for i in range(4)]
    failures: list[BaseException] = []

    def toggle(client: Client) -> None:
        try:
            for i in range(25):
                client.mutate(UNFOLLOW if i % 2 else FOLLOW, id=case_id)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    cursor = all_history(alice, f"case:{case_id}")[-1]["cursor"]
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=cursor) as sub:
        # when they write to the one case at the same time (4 x 25 follow/unfollow)
        threads = [threading.Thread(target=toggle, args=(w,)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        live = [e["caseActivity"]["seq"] for e in sub.take(100, timeout=20)]
        assert sub.nothing(0.5)
    # then the log is 1..102 with no gap and no duplicate, and so is what the subscriber saw
    assert [e["seq"] for e in all_history(alice, f"case:{case_id}")] == list(range(1, 103))
    assert live == list(range(3, 103))
    # and alice, who follows the case, has one notification that counted every one of them
    notes = alice.gql("{ notifications { edges { node { subjectId count } } } }")["notifications"]["edges"]
    assert [e["node"] for e in notes] == [{"subjectId": case_id, "count": 100}]


def test_article_activity_authorises_through_the_article_stream(user: Callable[..., Client], tenant: str) -> None:
    alice = user("alice", "editor")
    with alice.subscribe(ARTICLE_ACTIVITY, id="art_missing") as sub:
        with pytest.raises(GraphQLErrors) as missing:
            sub.next()
    assert missing.value.codes == ["NOT_FOUND"]


def test_expired_token_closes_the_socket_with_4401(user: Callable[..., Client], hub: HubProcess) -> None:
    # given a subscriber whose token lives 3 seconds
    _, alice, case_id = staffed_case(user)
    short = Client(hub, "alice", "agent", alice.tenant, ttl=3)
    started = time.monotonic()
    with short.subscribe(CASE_ACTIVITY, id=case_id) as sub:
        time.sleep(0.3)
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        assert sub.next()["caseActivity"]["seq"] == 3  # it works while the token is valid
        # when the token expires, then the server closes the connection with 4401
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = json.loads(sub.ws.recv(timeout=10))
                assert message["type"] in ("ping", "pong"), message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert 1.5 < time.monotonic() - started < 6.0


def test_cursor_past_retention_ends_with_events_pruned(
    user: Callable[..., Client], spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    # given a hub (on its own database) that keeps events for under a second
    short = spawn_hub(HUB_MONGODB_DB=f"prune_{uuid.uuid4().hex[:8]}", HUB_EVENT_RETENTION_DAYS="0.00002",
                      HUB_PRUNE_INTERVAL_S="0.3")
    alice = Client(short, "alice", "agent", tenant)
    case_id = alice.mutate(CREATE, s="Short-lived history")["case"]["id"]
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    first, last = all_history(alice, f"case:{case_id}")
    # when the history is pruned
    deadline = time.monotonic() + 10
    while all_history(alice, f"case:{case_id}"):
        assert time.monotonic() < deadline, "never pruned"
        time.sleep(0.2)
    # then resuming from before the pruned events is refused with EVENTS_PRUNED
    with pytest.raises(GraphQLErrors) as page:
        alice.gql(HISTORY, s=f"case:{case_id}", after=first["cursor"])
    assert page.value.codes == ["EVENTS_PRUNED"]
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=first["cursor"]) as sub:
        with pytest.raises(GraphQLErrors) as ended:
            sub.next()
    assert ended.value.codes == ["EVENTS_PRUNED"]
    # and resuming from the last event seen (nothing lost) still works, live
    with alice.subscribe(CASE_ACTIVITY, id=case_id, after=last["cursor"]) as sub:
        assert sub.nothing(0.3)
        alice.mutate(SET_STATUS, id=case_id, s="PENDING")
        assert sub.next()["caseActivity"]["seq"] == 3
