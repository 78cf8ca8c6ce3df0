"""The notification inbox: who is told, grouping per subject, mark read, live and resumable."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.harness import Client
from tests.test_activity import ASSIGN, CREATE, FOLLOW, SET_STATUS

INBOX = """query($unread: Boolean, $first: Int, $after: String) {
  notifications(unreadOnly: $unread, first: $first, after: $after) {
    edges { cursor node { id kind subjectId subjectKind summary read count createdAt updatedAt } }
    pageInfo { hasNextPage endCursor } unreadCount streamCursor } }"""
MARK = """mutation($ids: [ID!], $all: Boolean) { notificationMarkRead(input: {ids: $ids, all: $all}) {
  errors { code message field } notifications { id read count } unreadCount } }"""
RECEIVED = """subscription($after: String) { notificationReceived(after: $after) {
  id kind subjectId summary read count seq cursor } }"""
COMMENT = """mutation($id: ID!, $body: String!, $v: Visibility) {
  commentAdd(input: {subjectId: $id, body: $body, visibility: $v}) { errors { code message } } }"""


def inbox(client: Client, unread: bool = False) -> list[dict[str, Any]]:
    return [e["node"] for e in client.gql(INBOX, unread=unread)["notifications"]["edges"]]


def test_followers_assignee_and_mentioned_users_get_one_notification_per_subject(
    user: Callable[..., Client],
) -> None:
    # given a customer's case and some staff
    carol, alice, bob, dave = (user("carol", "customer"), user("alice", "agent"), user("bob", "agent"),
                               user("dave", "expert"))
    dave.gql("{ viewer { id } }")  # known, so he can be mentioned
    case_id = carol.mutate(CREATE, s="Printer offline")["case"]["id"]
    # when an agent works the case (the customer follows her own case)
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    alice.mutate(SET_STATUS, id=case_id, s="PENDING")
    # then the customer has one notification for it, counting both changes, showing the latest
    [note] = inbox(carol)
    assert (note["subjectId"], note["subjectKind"], note["kind"], note["count"], note["read"]) == (
        case_id, "case", "case.status_changed", 2, False)
    assert note["summary"] == "Alice changed the status from OPEN to PENDING"
    assert inbox(alice) == []  # the actor is never told about her own change
    # when internal things happen: a follow, an assignment, a note mentioning an expert
    bob.mutate(FOLLOW, id=case_id)
    alice.mutate(ASSIGN, id=case_id, to="bob")
    alice.mutate(COMMENT, id=case_id, body="@dave can you look at the spooler?", v="INTERNAL")
    # then staff are told (the mention although dave follows nothing), the customer is not
    assert [(n["kind"], n["count"]) for n in inbox(bob)] == [("comment.added", 2)]
    assert [(n["kind"], n["count"]) for n in inbox(dave)] == [("comment.added", 1)]
    assert [n["count"] for n in inbox(carol)] == [2]
    # when a public change follows, everyone following sees their one notification grow
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    assert [n["count"] for n in inbox(carol)] == [3]
    assert [n["count"] for n in inbox(bob)] == [3]
    assert [n["count"] for n in inbox(dave)] == [1]
    # and another subject gets its own notification, listed first (most recent)
    other = carol.mutate(CREATE, s="Second issue")["case"]["id"]
    alice.mutate(SET_STATUS, id=other, s="OPEN")
    page = carol.gql(INBOX, first=1)["notifications"]
    assert [e["node"]["subjectId"] for e in page["edges"]] == [other] and page["unreadCount"] == 2
    rest = carol.gql(INBOX, first=5, after=page["pageInfo"]["endCursor"])["notifications"]
    assert [e["node"]["subjectId"] for e in rest["edges"]] == [case_id]


def test_mark_read_closes_the_group_and_refuses_bad_input(user: Callable[..., Client]) -> None:
    # given a customer with an unread notification
    carol, alice, bob = user("carol", "customer"), user("alice", "agent"), user("bob", "agent")
    case_id = carol.mutate(CREATE, s="Invoice blank")["case"]["id"]
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    [note] = inbox(carol)
    # bad input is refused and changes nothing
    assert carol.mutate_error(MARK) == {
        "code": "INVALID", "field": "ids", "message": "Give the ids of the notifications to mark read, or all: true"}
    assert bob.mutate_error(MARK, ids=[note["id"]])["code"] == "NOT_FOUND"
    assert carol.mutate_error(MARK, ids=[note["id"], "ntf_nope"])["field"] == "ids"
    assert inbox(carol, unread=True) == [note]
    # when she marks it read
    marked = carol.mutate(MARK, ids=[note["id"]])
    assert marked["notifications"] == [{"id": note["id"], "read": True, "count": 1}]
    assert marked["unreadCount"] == 0 and inbox(carol, unread=True) == []
    assert carol.mutate(MARK, ids=[note["id"]])["notifications"][0]["read"]  # idempotent
    # then the next change starts a new notification; the read one stays as it was
    alice.mutate(SET_STATUS, id=case_id, s="PENDING")
    fresh, old = inbox(carol)
    assert (fresh["count"], fresh["read"], old["id"], old["read"]) == (1, False, note["id"], True)
    assert carol.mutate(MARK, all=True)["unreadCount"] == 0


def test_notification_received_is_live_resumable_and_private(user: Callable[..., Client]) -> None:
    # given a customer who read her inbox, then subscribed from its stream cursor
    carol, alice, bob = user("carol", "customer"), user("alice", "agent"), user("bob", "agent")
    case_id = carol.mutate(CREATE, s="VPN drops")["case"]["id"]
    cursor = carol.gql(INBOX)["notifications"]["streamCursor"]
    with carol.subscribe(RECEIVED, after=cursor) as sub, bob.subscribe(RECEIVED) as other:
        time.sleep(0.3)
        # when the case changes, then the one evolving notification is pushed live
        alice.mutate(SET_STATUS, id=case_id, s="OPEN")
        alice.mutate(SET_STATUS, id=case_id, s="PENDING")
        first, second = (n["notificationReceived"] for n in sub.take(2))
        assert (first["id"], first["count"], second["count"]) == (second["id"], 1, 2)
        assert second["subjectId"] == case_id and second["kind"] == "case.status_changed"
        assert other.nothing(0.3)  # nobody else's inbox
    # when she is away for two more changes, then resuming replays exactly those
    alice.mutate(SET_STATUS, id=case_id, s="OPEN")
    alice.mutate(SET_STATUS, id=case_id, s="SOLVED")
    with carol.subscribe(RECEIVED, after=second["cursor"]) as sub:
        assert [n["notificationReceived"]["count"] for n in sub.take(2)] == [3, 4]
        # and marking it read (on any device) is pushed too
        carol.mutate(MARK, ids=[second["id"]])
        read = sub.next()["notificationReceived"]
        assert (read["id"], read["read"], read["count"]) == (second["id"], True, 4)
        assert sub.nothing(0.3)


ARTICLE_CREATE = """mutation($t: String!) { articleCreate(input: {title: $t, issue: "Spooler hangs"}) {
  errors { code message } article { id } } }"""
FEEDBACK = """mutation($id: ID!, $body: String!) { articleFeedbackAdd(input: {articleId: $id, kind: GAP, body: $body}) {
  errors { code message } } }"""
ARTICLE_ACTIVITY = """subscription($id: ID!) { articleActivity(articleId: $id) { seq kind actor { id } } }"""


def test_article_owner_is_notified_and_article_activity_is_live(user: Callable[..., Client]) -> None:
    # given an editor's article and its live activity stream
    ed, alice = user("ed", "editor", kcs="contributor"), user("alice", "agent", kcs="contributor")
    article_id = ed.mutate(ARTICLE_CREATE, t="Printer spooler")["article"]["id"]
    with ed.subscribe(ARTICLE_ACTIVITY, id=article_id) as sub:
        time.sleep(0.3)
        # when an agent reports a gap twice
        alice.mutate(FEEDBACK, id=article_id, body="No steps for Windows 11")
        alice.mutate(FEEDBACK, id=article_id, body="Nor for macOS")
        # then the owner sees both events live and one grouped notification
        events = [e["articleActivity"] for e in sub.take(2)]
    assert [(e["seq"], e["kind"], e["actor"]["id"]) for e in events] == [
        (2, "article.feedback_added", "alice"), (3, "article.feedback_added", "alice")]
    [note] = inbox(ed)
    assert (note["subjectId"], note["subjectKind"], note["kind"], note["count"]) == (
        article_id, "article", "article.feedback_added", 2)
    assert inbox(alice) == []
