"""Expert finder and swarming through the public API."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Client, GraphQLErrors

CREATE_CASE = """mutation($s: String!, $c: ID, $k: [String!]) {
  caseCreate(input: {subject: $s, customerId: $c, skills: $k}) { errors { code } case { id } } }"""
ASSIGN = """mutation($id: ID!, $a: ID) { caseAssign(input: {caseId: $id, assigneeId: $a}) {
  errors { code message } case { id } } }"""
SOLVE = """mutation($id: ID!) { caseSetStatus(input: {caseId: $id, status: SOLVED}) { errors { code message } } }"""
HEARTBEAT = """mutation($s: PresenceStatus) { presenceUpdate(input: {status: $s}) { errors { code } } }"""
EXPERTS = """query($s: String, $o: Boolean) { experts(skill: $s, onlineOnly: $o) { id online } }"""
MATCHES = """query($s: String) { expertMatches(skill: $s) { user { id } score status openCases solvedCases } }"""
SWARM_FIELDS = """id caseId status skills note outcome roomId closedAt requestedBy { id } invited { id }
  members { user { id } joinedAt leftAt active }"""
REQUEST = f"""mutation($c: ID!, $k: [String!], $n: String!) {{
  swarmRequest(input: {{caseId: $c, skills: $k, note: $n}}) {{
  errors {{ code message field }} swarm {{ {SWARM_FIELDS} }} }} }}"""
JOIN = f"""mutation($id: ID!) {{ swarmJoin(input: {{swarmId: $id}}) {{
  errors {{ code message field }} swarm {{ {SWARM_FIELDS} }} }} }}"""
LEAVE = f"""mutation($id: ID!) {{ swarmLeave(input: {{swarmId: $id}}) {{
  errors {{ code message field }} swarm {{ {SWARM_FIELDS} }} }} }}"""
CLOSE = f"""mutation($id: ID!, $o: String!) {{ swarmClose(input: {{swarmId: $id, outcome: $o}}) {{
  errors {{ code message field }} swarm {{ {SWARM_FIELDS} }} }} }}"""
SWARMS = """query($c: ID!) { swarms(caseId: $c) { id status outcome } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node { kind visibility data } } } }"""
NOTIFICATIONS = """{ notifications(unreadOnly: true) { edges { node { kind subjectId summary } } } }"""
ROOM = """query($id: ID!) { chatRoom(id: $id) { id kind caseId members { id } } }"""
SEND = """mutation($r: ID!, $b: String!) { chatMessageSend(input: {roomId: $r, body: $b}) { errors { code } } }"""


def known(client: Client) -> Client:
    client.gql("{ viewer { id } }")
    return client


def test_experts_ranked_by_skill_availability_load_and_contribution(user: Callable[..., Client]) -> None:
    # given a seeded set of network experts (see resolvers/experts.py for the score)
    sup = known(user("sup", "supervisor"))
    ann, ben, _cat, dan = (known(user(n, "expert", skills=["network"])) for n in ("ann", "ben", "cat", "dan"))
    known(user("gus", "agent", skills=["printing"]))
    known(user("ivy", "customer", skills=["network"]))
    ann.mutate(HEARTBEAT, s="AVAILABLE")
    ben.mutate(HEARTBEAT, s="BUSY")
    dan.mutate(HEARTBEAT, s="AVAILABLE")
    for _ in range(3):  # dan carries three open cases
        case_id = sup.mutate(CREATE_CASE, s="Load", c=None, k=None)["case"]["id"]
        sup.mutate(ASSIGN, id=case_id, a="dan")
    for _ in range(5):  # cat solved five
        case_id = sup.mutate(CREATE_CASE, s="Solved", c=None, k=None)["case"]["id"]
        sup.mutate(ASSIGN, id=case_id, a="cat")
        sup.gql(SOLVE, id=case_id)
    # when a supervisor looks for network experts
    ranked = sup.gql(EXPERTS, s="Network", o=None)["experts"]
    # then: ann 40+30+20 = 90, dan 40+30+5 = 75, ben 40+15+20 = 75 (less available), cat 40+20+5 = 65
    assert ranked == [{"id": "ann", "online": True}, {"id": "dan", "online": True},
                      {"id": "ben", "online": True}, {"id": "cat", "online": False}]
    matches = {m["user"]["id"]: m for m in sup.gql(MATCHES, s="network")["expertMatches"]}
    assert [matches[u]["score"] for u in ("ann", "dan", "ben", "cat")] == [90, 75, 75, 65]
    assert (matches["dan"]["openCases"], matches["cat"]["solvedCases"], matches["ben"]["status"]) == (3, 5, "BUSY")
    assert [u["id"] for u in sup.gql(EXPERTS, s="network", o=True)["experts"]] == ["ann", "dan", "ben"]
    assert sup.gql(EXPERTS, s=None, o=True)["experts"][0]["id"] == "ann"
    assert sup.gql(EXPERTS, s="cobol", o=None)["experts"] == []
    with pytest.raises(GraphQLErrors) as err:
        user("ivy", "customer").gql(EXPERTS, s="network", o=None)
    assert err.value.codes == ["FORBIDDEN"]


def test_swarm_request_join_leave_close(user: Callable[..., Client]) -> None:
    alice = known(user("alice", "agent", skills=["vpn"]))
    bob = known(user("bob", "expert", skills=["vpn"]))
    eve = known(user("eve", "expert", skills=["VPN", "dns"]))
    known(user("frank", "expert", skills=["printing"]))
    carol = known(user("carol", "customer"))
    bob.mutate(HEARTBEAT, s="AVAILABLE")
    case_id = alice.mutate(CREATE_CASE, s="VPN drops", c="carol", k=["vpn"])["case"]["id"]
    # when alice asks for a swarm (skills default to the case's)
    swarm = alice.mutate(REQUEST, c=case_id, k=None, n="Customer is blocked")["swarm"]
    # then the matching experts are invited, the online one first, and told in their inbox
    assert [u["id"] for u in swarm["invited"]] == ["bob", "eve"]
    assert (swarm["status"], swarm["skills"], swarm["requestedBy"]["id"]) == ("OPEN", ["vpn"], "alice")
    for expert in (bob, eve):
        inbox = [e["node"] for e in expert.gql(NOTIFICATIONS)["notifications"]["edges"]]
        assert any(n["subjectId"] == case_id and n["kind"] == "swarm.requested" for n in inbox), inbox
    assert alice.mutate_error(REQUEST, c=case_id, k=["vpn"], n="")["code"] == "CONFLICT"
    # bob joins: he is a member of the swarm and of its room
    joined = bob.mutate(JOIN, id=swarm["id"])["swarm"]
    assert [(m["user"]["id"], m["active"]) for m in joined["members"]] == [("alice", True), ("bob", True)]
    assert bob.mutate(JOIN, id=swarm["id"])["swarm"]["members"] == joined["members"]  # idempotent
    room = bob.gql(ROOM, id=swarm["roomId"])["chatRoom"]
    assert (room["kind"], room["caseId"], {m["id"] for m in room["members"]}) == ("SWARM", case_id, {"alice", "bob"})
    bob.mutate(SEND, r=swarm["roomId"], b="Looking at the MTU")
    assert carol.gql(ROOM, id=swarm["roomId"])["chatRoom"] is None
    # bob leaves, alice closes with the outcome
    left = bob.mutate(LEAVE, id=swarm["id"])["swarm"]
    assert [m["active"] for m in left["members"]] == [True, False] and left["members"][1]["leftAt"]
    assert bob.mutate_error(LEAVE, id=swarm["id"])["code"] == "INVALID"
    assert alice.mutate_error(CLOSE, id=swarm["id"], o=" ")["field"] == "outcome"
    closed = alice.mutate(CLOSE, id=swarm["id"], o="MTU set to 1400")["swarm"]
    assert (closed["status"], closed["outcome"]) == ("CLOSED", "MTU set to 1400") and closed["closedAt"]
    assert eve.mutate_error(JOIN, id=swarm["id"])["code"] == "INVALID"
    # recorded in the case's activity, internally
    events = [e["node"] for e in alice.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]
    swarm_events = [(e["kind"], e["visibility"]) for e in events if e["kind"].startswith("swarm.")]
    assert swarm_events == [("swarm.requested", "INTERNAL"), ("swarm.joined", "INTERNAL"),
                            ("swarm.left", "INTERNAL"), ("swarm.closed", "INTERNAL")]
    assert events[-1]["data"]["outcome"] == "MTU set to 1400"
    assert alice.gql(SWARMS, c=case_id)["swarms"] == [{"id": swarm["id"], "status": "CLOSED",
                                                        "outcome": "MTU set to 1400"}]
    # never shown to the customer
    customer_view = [e["node"]["kind"] for e in carol.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]
    assert not [k for k in customer_view if k.startswith("swarm.")]
    assert carol.gql(SWARMS, c=case_id)["swarms"] == []
    # a second swarm reuses the case's room
    again = alice.mutate(REQUEST, c=case_id, k=["dns"], n="")["swarm"]
    assert again["roomId"] == swarm["roomId"] and [u["id"] for u in again["invited"]] == ["eve"]


def test_swarm_bad_input(user: Callable[..., Client]) -> None:
    alice = known(user("alice", "agent"))
    carol = known(user("carol", "customer"))
    case_id = carol.mutate(CREATE_CASE, s="Help", c=None, k=None)["case"]["id"]
    assert carol.mutate_error(REQUEST, c=case_id, k=["vpn"], n="")["code"] == "FORBIDDEN"
    error = alice.mutate_error(REQUEST, c=case_id, k=None, n="")
    assert (error["code"], error["field"]) == ("INVALID", "skills")
    assert alice.mutate_error(REQUEST, c="case_missing", k=["vpn"], n="")["code"] == "NOT_FOUND"
    assert alice.mutate_error(REQUEST, c=case_id, k=["vpn"], n="x" * 2001)["field"] == "note"
    assert alice.mutate_error(JOIN, id="swarm_missing")["code"] == "NOT_FOUND"
    assert alice.gql(SWARMS, c=case_id)["swarms"] == []  # nothing half-written
