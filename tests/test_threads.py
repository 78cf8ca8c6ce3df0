"""Comment threads through the public API: audiences, mentions, edits, deletes, visibility changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.harness import Client

CREATE_CASE = """mutation($s: String!) { caseCreate(input: {subject: $s}) {
  errors { code message field } case { id } } }"""
FIELDS = """id subjectId body visibility deleted version createdAt editedAt author { id } mentions { id }
  edits { body editedAt editor { id } }"""
ADD = f"""mutation($s: ID!, $b: String!, $v: Visibility! = PUBLIC, $a: [ID!]) {{
  commentAdd(input: {{subjectId: $s, body: $b, visibility: $v, attachmentIds: $a}}) {{
    errors {{ code message field }} comment {{ {FIELDS} }} }} }}"""
EDIT = f"""mutation($c: ID!, $b: String!) {{ commentEdit(input: {{commentId: $c, body: $b}}) {{
  errors {{ code message field }} comment {{ {FIELDS} }} }} }}"""
DELETE = f"""mutation($c: ID!) {{ commentDelete(input: {{commentId: $c}}) {{
  errors {{ code message field }} comment {{ {FIELDS} }} }} }}"""
SET_VISIBILITY = f"""mutation($c: ID!, $v: Visibility!) {{
  commentSetVisibility(input: {{commentId: $c, visibility: $v}}) {{
    errors {{ code message field }} comment {{ {FIELDS} }} }} }}"""
THREAD = f"""query($id: ID!, $first: Int, $after: String) {{ thread(id: $id) {{ id subjectId
  comments(first: $first, after: $after) {{ totalCount pageInfo {{ hasNextPage endCursor }}
    edges {{ cursor node {{ {FIELDS} }} }} }} }} }}"""
CASE_COMMENTS = """query($id: ID!) { case(id: $id) { comments { totalCount edges { node { id body } } } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { cursor node {
  kind visibility summary data actor { id } } } } }"""
ACTIVITY = """subscription($id: ID!, $after: String) { caseActivity(caseId: $id, after: $after) {
  kind visibility data } }"""


def remembered(*clients: Client) -> None:
    """Users become mentionable once the hub has seen their token."""
    for client in clients:
        client.gql("{ viewer { id } }")


def thread(client: Client, subject_id: str, **args: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.gql(THREAD, id=subject_id, **args)["thread"]
    return result


def bodies(client: Client, subject_id: str) -> list[str]:
    return [e["node"]["body"] for e in thread(client, subject_id)["comments"]["edges"]]


def history(client: Client, case_id: str) -> list[dict[str, Any]]:
    return [e["node"] for e in client.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]]


def comment_events(client: Client, case_id: str) -> list[dict[str, Any]]:
    return [e for e in history(client, case_id) if e["kind"].startswith("comment.")]


def test_customers_never_see_internal_comments(user: Callable[..., Client]) -> None:
    # given a customer's case with public and internal comments
    carol = user("carol", "customer")
    agent = user("alice", "agent")
    case_id = carol.mutate(CREATE_CASE, s="Cannot log in")["case"]["id"]
    first = agent.mutate(ADD, s=case_id, b="Have you tried resetting your password?")["comment"]
    note = agent.mutate(ADD, s=case_id, b="SECRET: account flagged by fraud team", v="INTERNAL")["comment"]
    reply = carol.mutate(ADD, s=case_id, b="Yes, still broken")["comment"]
    assert note["visibility"] == "INTERNAL" and first["author"] == {"id": "alice"}

    # then staff see all three, oldest first; the customer only the public ones, in every field
    staff_view = thread(agent, case_id)
    assert staff_view["id"] == case_id and staff_view["comments"]["totalCount"] == 3
    assert [e["node"]["id"] for e in staff_view["comments"]["edges"]] == [first["id"], note["id"], reply["id"]]
    customer_view = thread(carol, case_id)["comments"]
    assert customer_view["totalCount"] == 2
    assert [e["node"]["id"] for e in customer_view["edges"]] == [first["id"], reply["id"]]
    via_case = carol.gql(CASE_COMMENTS, id=case_id)["case"]["comments"]
    assert via_case["totalCount"] == 2 and "SECRET" not in str(via_case)
    assert agent.gql(CASE_COMMENTS, id=case_id)["case"]["comments"]["totalCount"] == 3
    customer_events = history(carol, case_id)
    assert [e["kind"] for e in customer_events if e["kind"].startswith("comment.")] == [
        "comment.added", "comment.added"]
    assert "SECRET" not in str(customer_events) and all(e["visibility"] == "PUBLIC" for e in customer_events)
    staff_events = comment_events(agent, case_id)
    assert [e["visibility"] for e in staff_events] == ["PUBLIC", "INTERNAL", "PUBLIC"]
    assert staff_events[1]["data"]["commentId"] == note["id"]
    assert staff_events[0]["data"]["body"] == "Have you tried resetting your password?"

    # and customers can add neither internal comments nor comments on cases they cannot read
    assert carol.mutate_error(ADD, s=case_id, b="psst", v="INTERNAL") == {
        "code": "FORBIDDEN", "message": "Only staff may add internal comments", "field": "visibility"}
    dave = user("dave", "customer")
    assert dave.gql(THREAD, id=case_id)["thread"] is None
    assert dave.mutate_error(ADD, s=case_id, b="hello")["code"] == "NOT_FOUND"
    outsider = user("mallory", "supervisor", tenant_id="other-" + carol.tenant)
    assert outsider.gql(THREAD, id=case_id)["thread"] is None
    assert outsider.mutate_error(ADD, s=case_id, b="hello")["code"] == "NOT_FOUND"
    assert agent.gql(THREAD, id="nosuchkind_123")["thread"] is None
    assert thread(agent, case_id)["comments"]["totalCount"] == 3


def test_comments_paginate_oldest_first(user: Callable[..., Client]) -> None:
    agent = user("alice", "agent")
    case_id = agent.mutate(CREATE_CASE, s="Paging")["case"]["id"]
    for i in range(5):
        agent.mutate(ADD, s=case_id, b=f"comment {i}")
    seen: list[str] = []
    after = None
    while True:
        page = thread(agent, case_id, first=2, after=after)["comments"]
        assert page["totalCount"] == 5
        seen += [e["node"]["body"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"comment {i}" for i in range(5)]


def test_mentions_resolve_to_users_of_the_tenant(user: Callable[..., Client]) -> None:
    agent, bob, carol = user("alice", "agent"), user("bob", "expert"), user("carol", "customer")
    mallory = user("mallory", "agent", tenant_id="other-" + agent.tenant)
    remembered(agent, bob, carol, mallory)
    case_id = carol.mutate(CREATE_CASE, s="Mentions")["case"]["id"]

    comment = agent.mutate(ADD, s=case_id, b="@bob can you look? cc @carol, mail me at a@bob.io")["comment"]
    assert comment["mentions"] == [{"id": "bob"}, {"id": "carol"}]
    assert comment_events(agent, case_id)[-1]["data"]["mentions"] == ["bob", "carol"]
    note = agent.mutate(ADD, s=case_id, b="@bob internal heads-up", v="INTERNAL")["comment"]
    assert note["mentions"] == [{"id": "bob"}]

    unknown = agent.mutate_error(ADD, s=case_id, b="@nobody and @ghost, see @bob")
    assert unknown["code"] == "INVALID" and unknown["field"] == "body"
    assert "@nobody" in unknown["message"] and "@ghost" in unknown["message"] and "@bob" not in unknown["message"]
    other_tenant = agent.mutate_error(ADD, s=case_id, b="hey @mallory")
    assert (other_tenant["code"], other_tenant["field"]) == ("INVALID", "body")
    assert "@mallory" in other_tenant["message"]
    customer_in_note = agent.mutate_error(ADD, s=case_id, b="@carol is difficult", v="INTERNAL")
    assert (customer_in_note["code"], customer_in_note["field"]) == ("INVALID", "body")
    # nothing of the refused comments was written
    assert thread(agent, case_id)["comments"]["totalCount"] == 2
    assert len(comment_events(agent, case_id)) == 2


def test_edit_keeps_history_for_staff_and_author(user: Callable[..., Client]) -> None:
    carol, alice, bob = user("carol", "customer"), user("alice", "agent"), user("bob", "agent")
    boss = user("sue", "supervisor")
    case_id = carol.mutate(CREATE_CASE, s="Edits")["case"]["id"]
    comment = alice.mutate(ADD, s=case_id, b="first version")["comment"]
    assert comment["editedAt"] is None and comment["edits"] == []

    # only the author or a supervisor may edit
    assert bob.mutate_error(EDIT, c=comment["id"], b="hijack")["code"] == "FORBIDDEN"
    assert carol.mutate_error(EDIT, c=comment["id"], b="hijack")["code"] == "FORBIDDEN"
    edited = alice.mutate(EDIT, c=comment["id"], b="second version")["comment"]
    assert edited["body"] == "second version" and edited["editedAt"] and edited["version"] == 2
    assert [(e["body"], e["editor"]["id"]) for e in edited["edits"]] == [("first version", "alice")]
    boss.mutate(EDIT, c=comment["id"], b="third version")
    staff_view = thread(bob, case_id)["comments"]["edges"][0]["node"]
    assert [(e["body"], e["editor"]["id"]) for e in staff_view["edits"]] == [
        ("first version", "alice"), ("second version", "sue")]
    # the customer reads the text, not the history of someone else's comment
    customer_view = thread(carol, case_id)["comments"]["edges"][0]["node"]
    assert customer_view["body"] == "third version" and customer_view["edits"] == []
    own = carol.mutate(ADD, s=case_id, b="typo")["comment"]
    assert [e["body"] for e in carol.mutate(EDIT, c=own["id"], b="fixed")["comment"]["edits"]] == ["typo"]
    events = comment_events(alice, case_id)
    assert [e["kind"] for e in events] == ["comment.added", "comment.edited", "comment.edited",
                                           "comment.added", "comment.edited"]
    assert events[1]["data"]["body"] == "second version"
    assert alice.mutate_error(EDIT, c=comment["id"], b="   ")["field"] == "body"


def test_internal_comment_is_invisible_to_customer_writes(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE_CASE, s="Hidden")["case"]["id"]
    note = alice.mutate(ADD, s=case_id, b="internal", v="INTERNAL")["comment"]
    for error in (carol.mutate_error(EDIT, c=note["id"], b="x"), carol.mutate_error(DELETE, c=note["id"])):
        assert (error["code"], error["field"]) == ("NOT_FOUND", "commentId")
    assert [e["node"]["body"] for e in thread(alice, case_id)["comments"]["edges"]] == ["internal"]


def test_soft_delete_keeps_the_place(user: Callable[..., Client]) -> None:
    carol, alice, bob = user("carol", "customer"), user("alice", "agent"), user("bob", "agent")
    admin = user("ada", "admin")
    case_id = carol.mutate(CREATE_CASE, s="Deletes")["case"]["id"]
    ids = [alice.mutate(ADD, s=case_id, b=f"comment {i}")["comment"]["id"] for i in range(3)]
    alice.mutate(EDIT, c=ids[1], b="comment 1 edited")

    assert bob.mutate_error(DELETE, c=ids[1])["code"] == "FORBIDDEN"
    deleted = alice.mutate(DELETE, c=ids[1])["comment"]
    assert deleted["deleted"] is True and deleted["body"] == "" and deleted["edits"] == []
    assert bodies(carol, case_id) == ["comment 0", "", "comment 2"]
    assert thread(carol, case_id)["comments"]["totalCount"] == 3
    assert alice.mutate_error(EDIT, c=ids[1], b="back")["code"] == "INVALID"
    assert alice.mutate_error(DELETE, c=ids[1])["code"] == "INVALID"
    admin.mutate(DELETE, c=ids[2])
    events = comment_events(carol, case_id)
    assert [e["kind"] for e in events][-2:] == ["comment.deleted", "comment.deleted"]
    assert "body" not in events[-1]["data"] and "comment 1" not in str(events[-2:])


def test_one_megabyte_comment_is_refused_and_nothing_written(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE_CASE, s="Big")["case"]["id"]
    huge = alice.mutate_error(ADD, s=case_id, b="x" * 1_000_000)
    assert (huge["code"], huge["field"]) == ("INVALID", "body")
    assert alice.mutate_error(ADD, s=case_id, b="y" * 20_001)["field"] == "body"
    assert alice.mutate_error(ADD, s=case_id, b=" \n ")["field"] == "body"
    assert thread(alice, case_id)["comments"]["totalCount"] == 0
    assert comment_events(alice, case_id) == []
    exact = alice.mutate(ADD, s=case_id, b="<b>" + "z" * 19_997)["comment"]
    assert exact["body"].startswith("<b>zz") and len(exact["body"]) == 20_000  # stored as plain text
    assert len(comment_events(alice, case_id)[0]["data"]["body"]) == 200


def test_visibility_changes_never_leak_internal_text(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE_CASE, s="Visibility")["case"]["id"]
    cursor = carol.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"][-1]["cursor"]
    with carol.subscribe(ACTIVITY, id=case_id, after=cursor) as sub:
        public = alice.mutate(ADD, s=case_id, b="public words")["comment"]
        hidden = alice.mutate(SET_VISIBILITY, c=public["id"], v="INTERNAL")["comment"]
        assert hidden["visibility"] == "INTERNAL"
        alice.mutate(EDIT, c=public["id"], b="now secret words")
        note = alice.mutate(ADD, s=case_id, b="internal draft", v="INTERNAL")["comment"]
        alice.mutate(EDIT, c=note["id"], b="approved answer")
        alice.mutate(SET_VISIBILITY, c=note["id"], v="PUBLIC")
        received = [m["caseActivity"] for m in sub.take(3)]
        assert sub.nothing(0.5)
    assert [(e["kind"], e["visibility"]) for e in received] == [
        ("comment.added", "PUBLIC"), ("comment.removed", "PUBLIC"), ("comment.added", "PUBLIC")]
    assert received[1]["data"] == {"commentId": public["id"], "subjectId": case_id}
    assert received[2]["data"]["body"] == "approved answer" and received[2]["data"]["commentId"] == note["id"]
    assert "secret" not in str(received) and "draft" not in str(received)
    assert bodies(carol, case_id) == ["approved answer"]
    # only staff change visibility; a no-op changes nothing
    assert carol.mutate_error(SET_VISIBILITY, c=note["id"], v="INTERNAL")["code"] == "FORBIDDEN"
    before = len(history(alice, case_id))
    assert alice.mutate(SET_VISIBILITY, c=note["id"], v="PUBLIC")["comment"]["version"] == 3
    assert len(history(alice, case_id)) == before


def test_comment_mentioning_a_customer_cannot_become_internal(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    remembered(carol)
    case_id = carol.mutate(CREATE_CASE, s="Mention then hide")["case"]["id"]
    comment = alice.mutate(ADD, s=case_id, b="@carol please confirm")["comment"]
    error = alice.mutate_error(SET_VISIBILITY, c=comment["id"], v="INTERNAL")
    assert (error["code"], error["field"]) == ("INVALID", "visibility")
    assert bodies(carol, case_id) == ["@carol please confirm"]
