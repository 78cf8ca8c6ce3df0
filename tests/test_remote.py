"""Remote-support sessions and the signalling relay through the public API (two hub processes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors, HubProcess, Subscription

CREATE_CASE = """mutation($s: String!, $c: ID) { caseCreate(input: {subject: $s, customerId: $c}) {
  errors { code } case { id } } }"""
SESSION = "id caseId status host { id } invitees { id } participants { user { id } active }"
CREATE = f"""mutation($c: ID!, $i: [ID!]!) {{ remoteSessionCreate(input: {{caseId: $c, invitees: $i}}) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
JOIN = f"""mutation($id: ID!) {{ remoteSessionJoin(input: {{sessionId: $id}}) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
LEAVE = f"""mutation($id: ID!) {{ remoteSessionLeave(input: {{sessionId: $id}}) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
END = f"""mutation($id: ID!) {{ remoteSessionEnd(input: {{sessionId: $id}}) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
SEND = """mutation($id: ID!, $to: ID!, $k: RemoteSignalKind!, $p: JSON!) {
  remoteSignalSend(input: {sessionId: $id, to: $to, kind: $k, payload: $p}) {
    errors { code message field } signal { id kind } } }"""
SIGNALS = """subscription($id: ID!) { remoteSignals(sessionId: $id) { id kind payload from { id } to { id } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node { kind visibility } } } }"""


def known(client: Client) -> Client:
    client.gql("{ viewer { id } }")
    return client


def live(sub: Subscription, sender: Client, session: str, to: str) -> None:
    """Wait until `sub` is listening: ping it with CONTROL signals until one arrives."""
    for _ in range(30):
        sender.mutate(SEND, id=session, to=to, k="CONTROL", p={"ping": True})
        try:
            assert sub.next(timeout=0.3)["remoteSignals"]["payload"] == {"ping": True}
            return
        except TimeoutError:
            continue
    raise AssertionError("subscription never became live")


def test_signals_reach_only_their_addressee(
    user: Callable[..., Client], spawn_hub: Callable[..., HubProcess], tenant: str
) -> None:
    alice, bob, dan = (known(user(n, r)) for n, r in (("alice", "agent"), ("bob", "expert"), ("dan", "expert")))
    carol = known(user("carol", "customer"))
    case_id = alice.mutate(CREATE_CASE, s="Screen share", c="carol")["case"]["id"]
    session = alice.mutate(CREATE, c=case_id, i=["bob", "dan", "carol"])["session"]
    sid = session["id"]
    assert [p["user"]["id"] for p in session["participants"]] == ["alice"]
    for guest in (bob, dan, carol):
        guest.mutate(JOIN, id=sid)
    # carol listens on another hub process, dan on the shared one
    other = spawn_hub()
    carol_remote = Client(other, "carol", "customer", tenant, name="Carol")
    with carol_remote.subscribe(SIGNALS, id=sid) as carol_sub, dan.subscribe(SIGNALS, id=sid) as dan_sub:
        live(carol_sub, alice, sid, "carol")
        live(dan_sub, alice, sid, "dan")
        # when alice offers to carol and bob sends ICE candidates to carol
        offer = {"type": "offer", "sdp": "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\n"}
        alice.mutate(SEND, id=sid, to="carol", k="OFFER", p=offer)
        for n in range(3):
            bob.mutate(SEND, id=sid, to="carol", k="ICE", p={"candidate": f"c{n}", "sdpMLineIndex": 0})
        got = [s["remoteSignals"] for s in carol_sub.take(4)]
        # then carol gets them in order, and dan (the third participant) nothing
        assert got[0] == {"id": got[0]["id"], "kind": "OFFER", "payload": offer, "from": {"id": "alice"},
                          "to": {"id": "carol"}}
        assert [(s["kind"], s["from"]["id"], s["payload"]["candidate"]) for s in got[1:]] == [
            ("ICE", "bob", "c0"), ("ICE", "bob", "c1"), ("ICE", "bob", "c2")]
        assert dan_sub.nothing(1.0)
        # dan leaves: his stream ends and he can no longer be addressed
        dan.mutate(LEAVE, id=sid)
        with pytest.raises(EOFError):
            dan_sub.next()
        error = alice.mutate_error(SEND, id=sid, to="dan", k="OFFER", p={})
        assert (error["code"], error["field"]) == ("INVALID", "to")
        # alice ends the session: carol's stream ends, nothing more is relayed
        ended = alice.mutate(END, id=sid)["session"]
        assert ended["status"] == "ENDED" and not any(p["active"] for p in ended["participants"])
        with pytest.raises(EOFError):
            carol_sub.next()
    assert alice.mutate_error(SEND, id=sid, to="carol", k="ICE", p={})["code"] == "INVALID"
    # audited in the case stream, publicly since the customer took part
    trail = [e["node"] for e in carol.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]
    kinds = [(e["kind"], e["visibility"]) for e in trail if e["kind"].startswith("remote.")]
    assert kinds == [("remote.created", "PUBLIC"), *[("remote.joined", "PUBLIC")] * 3,
                     ("remote.left", "PUBLIC"), ("remote.ended", "PUBLIC")]


def test_signalling_refusals(user: Callable[..., Client]) -> None:
    alice, bob, frank = (known(user(n, r)) for n, r in (("alice", "agent"), ("bob", "expert"), ("frank", "expert")))
    eve, carol = known(user("eve", "expert")), known(user("carol", "customer"))
    known(user("erin", "customer"))
    case_id = alice.mutate(CREATE_CASE, s="Internal look", c="carol")["case"]["id"]
    # invitees: known users; customers only from the case; staff only create
    assert alice.mutate_error(CREATE, c=case_id, i=["ghost"])["field"] == "invitees"
    assert alice.mutate_error(CREATE, c=case_id, i=[])["field"] == "invitees"
    assert alice.mutate_error(CREATE, c=case_id, i=["erin"])["code"] == "FORBIDDEN"
    assert carol.mutate_error(CREATE, c=case_id, i=["alice"])["code"] == "FORBIDDEN"
    sid = alice.mutate(CREATE, c=case_id, i=["bob", "frank"])["session"]["id"]
    bob.mutate(JOIN, id=sid)

    def refused(client: Client, **args: Any) -> tuple[str, str]:
        error = client.mutate_error(SEND, id=sid, **{"to": "bob", "k": "OFFER", "p": {}, **args})
        return error["code"], error["field"]

    assert refused(alice, to="eve") == ("INVALID", "to")  # not a participant
    assert refused(alice, to="frank") == ("INVALID", "to")  # invited, not joined
    assert refused(alice, to="alice") == ("INVALID", "to")
    assert refused(frank) == ("FORBIDDEN", "sessionId")  # not joined yet
    assert refused(eve) == ("FORBIDDEN", "sessionId")
    assert refused(carol) == ("NOT_FOUND", "sessionId")  # customers see only sessions they are in
    assert refused(alice, p={"sdp": "x" * 20_000}) == ("INVALID", "payload")
    assert eve.mutate_error(JOIN, id=sid)["code"] == "FORBIDDEN"
    assert bob.mutate_error(END, id=sid)["code"] == "FORBIDDEN"
    with pytest.raises(GraphQLErrors) as err, frank.subscribe(SIGNALS, id=sid) as sub:
        sub.next()
    assert err.value.codes == ["FORBIDDEN"]
    # staff-only sessions are internal: the customer sees none of it
    events = [e["node"] for e in carol.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]
    assert not [e for e in events if e["kind"].startswith("remote.")]
    staff = [e["node"] for e in alice.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]
    assert [(e["kind"], e["visibility"]) for e in staff if e["kind"].startswith("remote.")] == [
        ("remote.created", "INTERNAL"), ("remote.joined", "INTERNAL")]
    assert carol.gql("query($id: ID!) { remoteSession(id: $id) { id } }", id=sid)["remoteSession"] is None
