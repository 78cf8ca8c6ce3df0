"""Presence through the public API: snapshot then changes, devices, flaps, TTL expiry, audiences."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.harness import Client, GraphQLErrors, HubProcess

CREATE_CASE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code } case { id } } }"""
UPDATE = """mutation($r: ID, $st: PresenceState!, $status: PresenceStatus, $d: String) {
  presenceUpdate(input: {resourceId: $r, state: $st, status: $status, device: $d}) {
    errors { code message field } ttlSeconds presence { resourceId state status user { id } } } }"""
LEAVE = """mutation($r: ID!, $d: String) { presenceLeave(input: {resourceId: $r, device: $d}) {
  errors { code message field } left } }"""
PRESENCE = """query($r: ID!) { presence(resourceId: $r) {
  resourceId state status anonymous role updatedAt user { id name online } } }"""
CHANGED = """subscription($r: ID!) { presenceChanged(resourceId: $r) {
  kind resourceId presence { state status anonymous role user { id } } presences { state user { id } } } }"""
EXPERTS = """query($s: String, $o: Boolean) { experts(skill: $s, onlineOnly: $o) { id online } }"""


def case_of(client: Client) -> str:
    case_id: str = client.mutate(CREATE_CASE, s="Presence test")["case"]["id"]
    return case_id


def heartbeat(client: Client, resource: str | None, state: str = "VIEWING", **extra: str) -> dict:  # type: ignore[type-arg]
    return client.mutate(UPDATE, r=resource, st=state, **extra)


def test_snapshot_then_changes(user: Callable[..., Client]) -> None:
    # given an agent on a case and a colleague watching its presence
    alice, bob = user("alice", "agent"), user("bob", "agent")
    case_id = case_of(alice)
    heartbeat(bob, case_id)
    with bob.subscribe(CHANGED, r=case_id) as sub:
        first = sub.next()["presenceChanged"]
        assert first["kind"] == "SNAPSHOT" and first["presence"] is None
        # when alice starts viewing, then typing
        started = time.monotonic()
        reply = heartbeat(alice, case_id)
        assert reply["ttlSeconds"] == 30 and reply["presence"]["user"]["id"] == "alice"
        joined = next_for(sub, "alice")
        # then the join is announced after the flap window, and the change at once
        assert joined["kind"] == "JOINED" and joined["presence"]["state"] == "VIEWING"
        assert time.monotonic() - started >= 0.9
        heartbeat(alice, case_id, "COMPOSING")
        updated = next_for(sub, "alice")
        assert updated["kind"] == "UPDATED" and updated["presence"]["state"] == "COMPOSING"
        assert {p["user"]["id"] for p in updated["presences"]} >= {"alice"}
    listed = {p["user"]["id"]: p for p in bob.gql(PRESENCE, r=case_id)["presence"]}
    assert listed["alice"]["state"] == "COMPOSING" and listed["alice"]["status"] == "AVAILABLE"
    assert listed["alice"]["user"]["online"] is True and listed["alice"]["anonymous"] is False


def next_for(sub: object, uid: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """The next change about `uid` (other users' changes are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = sub.next(max(0.1, deadline - time.monotonic()))["presenceChanged"]  # type: ignore[attr-defined]
        if event["presence"] and event["presence"]["user"]["id"] == uid:
            result: dict = event  # type: ignore[type-arg]
            return result


def test_second_device_keeps_user_present(user: Callable[..., Client]) -> None:
    alice, bob = user("alice", "agent"), user("bob", "agent")
    case_id = case_of(alice)
    with bob.subscribe(CHANGED, r=case_id) as sub:
        sub.next()
        heartbeat(alice, case_id, d="laptop")
        heartbeat(alice, case_id, d="phone")
        assert next_for(sub, "alice")["kind"] == "JOINED"
        # when one tab closes, the user stays
        assert alice.mutate(LEAVE, r=case_id, d="laptop")["left"] is True
        assert sub.nothing(2.0)
        assert [p["user"]["id"] for p in bob.gql(PRESENCE, r=case_id)["presence"]] == ["alice"]
        # when the last one closes, the user leaves
        alice.mutate(LEAVE, r=case_id, d="phone")
        left = next_for(sub, "alice")
        assert left["kind"] == "LEFT" and left["presences"] == []
    assert bob.gql(PRESENCE, r=case_id)["presence"] == []


def test_flaps_are_not_broadcast(user: Callable[..., Client]) -> None:
    alice, bob = user("alice", "agent"), user("bob", "agent")
    case_id = case_of(alice)
    with bob.subscribe(CHANGED, r=case_id) as sub:
        sub.next()
        # OFFLINE → ONLINE → OFFLINE within the window: nothing at all
        heartbeat(alice, case_id)
        alice.mutate(LEAVE, r=case_id)
        assert sub.nothing(2.5)
        # a reload (ONLINE → OFFLINE → ONLINE): one JOINED, no LEFT
        heartbeat(alice, case_id)
        assert next_for(sub, "alice")["kind"] == "JOINED"
        alice.mutate(LEAVE, r=case_id)
        heartbeat(alice, case_id)
        assert sub.nothing(2.5)


def test_crashed_hub_users_expire_within_ttl(
    user: Callable[..., Client], spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    # given alice heartbeating through a second hub process with a 2 s TTL
    other = spawn_hub(HUB_PRESENCE_TTL_S="2")
    bob = user("bob", "agent")
    case_id = case_of(bob)
    alice = Client(other, "alice", "agent", tenant, name="Alice")
    with bob.subscribe(CHANGED, r=case_id) as sub:
        sub.next()
        assert heartbeat(alice, case_id)["ttlSeconds"] == 2
        # then the shared hub sees her (set on one process, seen on the other)
        assert next_for(sub, "alice")["kind"] == "JOINED"
        assert bob.gql(EXPERTS, s=None, o=True)["experts"] == [{"id": "alice", "online": True}]
        # when that process dies without a word
        other.kill()
        killed = time.monotonic()
        left = next_for(sub, "alice", timeout=10)
        waited = time.monotonic() - killed
    # then she expires within the TTL (plus one sweep period)
    assert left["kind"] == "LEFT"
    assert waited <= 2 + 1.0, waited
    assert bob.gql(EXPERTS, s=None, o=True)["experts"] == []


def test_customers_see_anonymous_agents_only(user: Callable[..., Client]) -> None:
    carol = user("carol", "customer")
    alice, bob = user("alice", "agent"), user("bob", "expert")
    case_id = case_of(carol)
    heartbeat(carol, case_id)
    with carol.subscribe(CHANGED, r=case_id) as sub:
        assert sub.next()["presenceChanged"]["kind"] == "SNAPSHOT"
        heartbeat(alice, case_id)
        heartbeat(bob, case_id, "EDITING")
        joined = next_for(sub, "anonymous:agent")
        assert joined["kind"] == "JOINED"
        assert joined["presence"] == {"state": joined["presence"]["state"], "status": None, "anonymous": True,
                                      "role": "agent", "user": {"id": "anonymous:agent"}}
        heartbeat(alice, case_id, "COMPOSING")
        typing = next_for(sub, "anonymous:agent")
        if typing["presence"]["state"] == "EDITING":  # bob's join may land in between
            typing = next_for(sub, "anonymous:agent")
        assert typing["kind"] == "UPDATED" and typing["presence"]["state"] == "COMPOSING"
        seen = {p["user"]["id"] for p in typing["presences"]}
        assert seen <= {"carol", "anonymous:agent"}, seen
    listed = carol.gql(PRESENCE, r=case_id)["presence"]
    assert {p["user"]["id"] for p in listed} == {"carol", "anonymous:agent"}
    assert all(p["status"] is None for p in listed if p["anonymous"])
    # staff see the customer and each other by name (bob's join may still be in its flap window)
    assert eventually(lambda: {p["user"]["id"] for p in alice.gql(PRESENCE, r=case_id)["presence"]}
                      == {"alice", "bob", "carol"})


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `check` until it holds (for state that has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_presence_on_resources_one_cannot_read(user: Callable[..., Client]) -> None:
    alice, carol, dave = user("alice", "agent"), user("carol", "customer"), user("dave", "customer")
    internal = case_of(alice)  # opened by staff for nobody: carol may not read it
    carols = case_of(carol)
    assert carol.mutate_error(UPDATE, r=internal, st="VIEWING")["code"] == "NOT_FOUND"
    assert dave.mutate_error(UPDATE, r=carols, st="VIEWING")["code"] == "NOT_FOUND"
    assert alice.mutate_error(UPDATE, r="case_nope", st="VIEWING")["code"] == "NOT_FOUND"
    assert alice.mutate_error(UPDATE, r="user:alice", st="VIEWING")["code"] == "NOT_FOUND"
    with pytest.raises(GraphQLErrors) as err:
        dave.gql(PRESENCE, r=carols)
    assert err.value.codes == ["NOT_FOUND"]
    with pytest.raises(GraphQLErrors) as err, dave.subscribe(CHANGED, r=carols) as sub:
        sub.next()
    assert err.value.codes == ["NOT_FOUND"]
    other_tenant = user("mallory", "supervisor", tenant_id="other-" + alice.tenant)
    assert other_tenant.mutate_error(UPDATE, r=carols, st="VIEWING")["code"] == "NOT_FOUND"
    assert alice.mutate_error(UPDATE, r=carols, st="VIEWING", d="x" * 100)["field"] == "device"


def test_status_and_rate_limit(user: Callable[..., Client]) -> None:
    alice, bob = user("alice", "agent", skills=["vpn"]), user("bob", "supervisor")
    case_id = case_of(alice)
    reply = heartbeat(alice, case_id, status="BUSY")
    assert reply["presence"]["status"] == "BUSY"
    assert heartbeat(alice, None)["presence"] is None  # tenant-wide heartbeat keeps the status
    assert bob.gql(EXPERTS, s="vpn", o=True)["experts"] == [{"id": "alice", "online": True}]
    heartbeat(alice, None, status="OFFLINE")  # invisible
    assert bob.gql(EXPERTS, s="vpn", o=True)["experts"] == []
    errors = [alice.gql(UPDATE, r=None, st="VIEWING", d="flood")["presenceUpdate"]["errors"] for _ in range(31)]
    assert errors[0] == [] and errors[-1][0]["code"] == "RATE_LIMITED"


def test_embedded_hub_has_the_same_semantics(spawn_hub: Callable[..., HubProcess], tenant: str) -> None:
    # a single process without Redis: in-process bus and presence, 1 s TTL
    solo = spawn_hub(HUB_REDIS_URL="", HUB_PRESENCE_TTL_S="1.5")
    alice, bob = Client(solo, "alice", "agent", tenant), Client(solo, "bob", "agent", tenant)
    case_id = case_of(alice)
    with bob.subscribe(CHANGED, r=case_id) as sub:
        sub.next()
        heartbeat(alice, case_id, d="laptop")
        heartbeat(alice, case_id, d="phone")
        assert next_for(sub, "alice")["kind"] == "JOINED"
        alice.mutate(LEAVE, r=case_id, d="laptop")
        heartbeat(alice, case_id, d="phone")
        assert sub.nothing(1.2)  # one device left, the other heartbeats: still there
        started = time.monotonic()
        assert next_for(sub, "alice")["kind"] == "LEFT"  # then silence: expired after the TTL
        assert time.monotonic() - started <= 1.5 + 1.0
