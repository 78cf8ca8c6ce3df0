"""Chat through the public API: rooms, messages with resume, typing, receipts, unread counts, rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Client, GraphQLErrors

CREATE_ROOM = """mutation($m: [ID!]!, $n: String, $c: ID) {
  chatRoomCreate(input: {memberIds: $m, name: $n, caseId: $c}) {
    errors { code message field } room { id name kind caseId members { id } } } }"""
SEND = """mutation($r: ID!, $b: String!) { chatMessageSend(input: {roomId: $r, body: $b}) {
  errors { code message field } message { id body seq author { id } createdAt } } }"""
TYPING = """mutation($r: ID!) { chatTyping(input: {roomId: $r}) { errors { code message field } room { id } } }"""
MARK_READ = """mutation($r: ID!, $m: ID) { chatMarkRead(input: {roomId: $r, messageId: $m}) {
  errors { code message field } room { id unreadCount } } }"""
ROOM = """query($id: ID!) { chatRoom(id: $id) { id name unreadCount members { id }
  lastMessage { id body } messages(first: 10) { edges { node { body author { id } } } } } }"""
ROOMS = """{ chatRooms(first: 10) { edges { node { id unreadCount lastMessage { body } } } } }"""
EVENTS = """subscription($r: ID!, $a: String) { chatEvents(roomId: $r, after: $a) {
  kind seq cursor messageId message { id body author { id } createdAt } user { id } } }"""
CREATE_CASE = """mutation($s: String!, $c: ID) { caseCreate(input: {subject: $s, customerId: $c}) {
  errors { code } case { id } } }"""


def people(user: Callable[..., Client], *specs: tuple[str, str]) -> list[Client]:
    """Clients that exist in the tenant's users (they called the API once)."""
    clients = [user(sub, role) for sub, role in specs]
    for client in clients:
        client.gql("{ viewer { id } }")
    return clients


def room_of(owner: Client, *members: Client, name: str | None = "Team", case: str | None = None) -> str:
    room_id: str = owner.mutate(CREATE_ROOM, m=[m.id for m in members], n=name, c=case)["room"]["id"]
    return room_id


def test_messages_resume_after_a_disconnect(user: Callable[..., Client]) -> None:
    alice, bob = people(user, ("alice", "agent"), ("bob", "expert"))
    room = room_of(alice, bob)
    with bob.subscribe(EVENTS, r=room) as sub:
        alice.mutate(SEND, r=room, b="one")
        first = sub.next()["chatEvents"]
    assert first["kind"] == "MESSAGE" and first["message"]["body"] == "one"
    assert first["message"]["author"]["id"] == "alice" and first["user"]["id"] == "alice"
    # while bob is away
    alice.mutate(SEND, r=room, b="two")
    alice.mutate(SEND, r=room, b="three")
    with bob.subscribe(EVENTS, r=room, a=first["cursor"]) as sub:
        replayed = [e["chatEvents"] for e in sub.take(2)]
        alice.mutate(SEND, r=room, b="four")
        live = sub.next()["chatEvents"]
        assert sub.nothing(0.5)
    bodies = [e["message"]["body"] for e in [*replayed, live]]
    assert bodies == ["two", "three", "four"]
    seqs = [first["seq"], *(e["seq"] for e in [*replayed, live])]
    assert seqs == sorted(set(seqs))
    page = bob.gql(ROOM, id=room)["chatRoom"]
    assert [e["node"]["body"] for e in page["messages"]["edges"]] == ["four", "three", "two", "one"]
    assert page["lastMessage"]["body"] == "four"


def test_typing_receipts_and_unread_counts(user: Callable[..., Client]) -> None:
    alice, bob = people(user, ("alice", "agent"), ("bob", "expert"))
    room = room_of(alice, bob)
    with alice.subscribe(EVENTS, r=room) as alice_sub, bob.subscribe(EVENTS, r=room) as bob_sub:
        sent = alice.mutate(SEND, r=room, b="are you there?")["message"]
        got = bob_sub.next()["chatEvents"]
        assert alice_sub.next()["chatEvents"]["kind"] == "MESSAGE"
        # typing reaches the others (not the typist), carrying the last message's cursor
        bob.mutate(TYPING, r=room)
        typing = alice_sub.next()["chatEvents"]
        assert typing["kind"] == "TYPING" and typing["user"]["id"] == "bob" and typing["message"] is None
        assert (typing["seq"], typing["cursor"]) == (got["seq"], got["cursor"])
        assert bob_sub.nothing(0.5)
        # unread counts are per member
        assert bob.gql(ROOM, id=room)["chatRoom"]["unreadCount"] == 1
        assert alice.gql(ROOM, id=room)["chatRoom"]["unreadCount"] == 0
        assert bob.gql(ROOMS)["chatRooms"]["edges"][0]["node"] == {
            "id": room, "unreadCount": 1, "lastMessage": {"body": "are you there?"}}
        # a read receipt tells the room and clears the count
        assert bob.mutate(MARK_READ, r=room, m=sent["id"])["room"]["unreadCount"] == 0
        receipt = alice_sub.next()["chatEvents"]
        assert receipt["kind"] == "READ" and receipt["user"]["id"] == "bob" and receipt["messageId"] == sent["id"]
    # typing and receipts are not stored: resuming after the message replays nothing
    with bob.subscribe(EVENTS, r=room, a=got["cursor"]) as sub:
        assert sub.nothing(0.5)


def test_typing_floods_are_refused(user: Callable[..., Client]) -> None:
    alice, bob = people(user, ("alice", "agent"), ("bob", "expert"))
    room = room_of(alice, bob)
    replies = [alice.gql(TYPING, r=room)["chatTyping"]["errors"] for _ in range(6)]
    assert replies[:5] == [[]] * 5
    assert replies[5][0]["code"] == "RATE_LIMITED"


def test_non_members_are_refused(user: Callable[..., Client]) -> None:
    alice, bob, carol = people(user, ("alice", "agent"), ("bob", "expert"), ("carol", "supervisor"))
    room = room_of(alice, bob)
    alice.mutate(SEND, r=room, b="secret")
    assert carol.gql(ROOM, id=room)["chatRoom"] is None
    assert carol.gql(ROOMS)["chatRooms"]["edges"] == []
    for op, args in ((SEND, {"b": "hi"}), (TYPING, {}), (MARK_READ, {})):
        error = carol.mutate_error(op, r=room, **args)
        assert (error["code"], error["field"]) == ("NOT_FOUND", "roomId")
    with pytest.raises(GraphQLErrors) as err, carol.subscribe(EVENTS, r=room) as sub:
        sub.next()
    assert err.value.codes == ["NOT_FOUND"]
    with pytest.raises(GraphQLErrors) as err:
        carol.gql("query($s: ID!) { activity(stream: $s) { edges { cursor } } }", s=f"room:{room}")
    assert err.value.codes == ["NOT_FOUND"]
    stranger = user("mallory", "supervisor", tenant_id="other-" + alice.tenant)
    assert stranger.gql(ROOM, id=room)["chatRoom"] is None
    assert alice.mutate_error(SEND, r=room, b="   ")["field"] == "body"
    assert alice.mutate_error(SEND, r=room, b="x" * 10_001)["code"] == "INVALID"


def test_membership_rules(user: Callable[..., Client]) -> None:
    alice, _bob, dave, erin = people(user, ("alice", "agent"), ("bob", "expert"), ("dave", "customer"),
                                    ("erin", "customer"))
    # members must exist in the tenant
    error = alice.mutate_error(CREATE_ROOM, m=["ghost"], n=None, c=None)
    assert (error["code"], error["field"]) == ("INVALID", "memberIds")
    assert alice.mutate_error(CREATE_ROOM, m=[], n=None, c=None)["field"] == "memberIds"
    # customers: not in group rooms, not opening rooms without a case, not with other customers
    assert alice.mutate_error(CREATE_ROOM, m=["bob", "dave"], n="G", c=None)["code"] == "FORBIDDEN"
    assert dave.mutate_error(CREATE_ROOM, m=["alice"], n=None, c=None)["code"] == "FORBIDDEN"
    # a direct room of staff with a customer is one per pair
    direct = alice.mutate(CREATE_ROOM, m=["dave"], n=None, c=None)["room"]
    assert direct["kind"] == "DIRECT"
    assert alice.mutate(CREATE_ROOM, m=["dave"], n=None, c=None)["room"]["id"] == direct["id"]
    # a case room: the case's customer may open it with staff; other customers may not be in it
    case_id = dave.mutate(CREATE_CASE, s="My router", c=None)["case"]["id"]
    case_room = dave.mutate(CREATE_ROOM, m=["alice", "bob"], n="Router", c=case_id)["room"]
    assert (case_room["kind"], case_room["caseId"]) == ("CASE", case_id)
    error = alice.mutate_error(CREATE_ROOM, m=["erin"], n=None, c=case_id)
    assert (error["code"], error["field"]) == ("FORBIDDEN", "memberIds")
    assert erin.mutate_error(CREATE_ROOM, m=["alice"], n=None, c=case_id)["code"] == "NOT_FOUND"
    # the customer receives the room's messages
    with dave.subscribe(EVENTS, r=case_room["id"]) as sub:
        alice.mutate(SEND, r=case_room["id"], b="Please restart it")
        assert sub.next()["chatEvents"]["message"]["body"] == "Please restart it"
