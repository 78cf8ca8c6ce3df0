"""Self-service sessions and their hand-off to a case, through the public API against the running hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors
from tests.test_knowledge import article, publish

Users = Callable[..., Client]

SESSION = """id status channel context createdAt escalatedAt resolvedAt customer { id } case { id }
  steps { n kind query articleId articleTitle helpful text article { id } }"""
START = f"""mutation($input: SelfServiceStartInput!) {{ selfServiceStart(input: $input) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
RECORD = f"""mutation($input: SelfServiceRecordInput!) {{ selfServiceRecord(input: $input) {{
  errors {{ code message field }} session {{ {SESSION} }} }} }}"""
RESOLVE = """mutation($s: ID!) { selfServiceResolve(input: {sessionId: $s}) {
  errors { code message field } session { id status resolvedAt } } }"""
ESCALATE = f"""mutation($s: ID!, $subject: String, $d: String) {{
  selfServiceEscalate(input: {{sessionId: $s, subject: $subject, description: $d}}) {{
  errors {{ code message field }} case {{ id subject description channel status customer {{ id }} }}
  session {{ {SESSION} }} }} }}"""
GET = f"query($id: ID!) {{ selfServiceSession(id: $id) {{ {SESSION} }} }}"
CASE = """query($c: ID!) { case(id: $c) { id channel selfServiceSession { id status steps { kind text } } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node {
  seq kind visibility summary data actor { id } } } } }"""
ARTICLE = """query($a: ID!) { article(id: $a) { viewCount helpfulCount notHelpfulCount viewerRating { helpful } } }"""


def history(client: Client, stream: str) -> list[dict[str, Any]]:
    return [e["node"] for e in client.gql(HISTORY, s=stream)["activity"]["edges"]]


def step(client: Client, session_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    session: dict[str, Any] = client.mutate(RECORD, input={"sessionId": session_id, "kind": kind, **fields})["session"]
    return session


def test_escalation_carries_the_session_as_first_timeline_entries(user: Users) -> None:
    # given a customer who searched, read one published article and found another one not helpful
    pat, carol, ann = user("pat", "agent", kcs="publisher"), user("carol", "customer"), user("ann", "agent")
    vpn, reset = article(pat, "VPN drops after 10 minutes"), article(pat, "Reset the VPN client")
    publish(pat, vpn)
    publish(pat, reset)
    session = carol.mutate(START, input={"channel": "widget", "context": {"page": "/help/vpn"}})["session"]
    sid = session["id"]
    assert (session["status"], session["channel"], session["context"], session["steps"]) == (
        "ACTIVE", "WIDGET", {"page": "/help/vpn"}, [])
    step(carol, sid, "SEARCH", query="  vpn   keeps dropping ")
    step(carol, sid, "VIEW", articleId=vpn)
    step(carol, sid, "HELPFUL", articleId=vpn)
    recorded = step(carol, sid, "NOT_HELPFUL", articleId=reset)
    assert [(s["n"], s["kind"], s["query"], s["articleId"], s["helpful"]) for s in recorded["steps"]] == [
        (1, "SEARCH", "vpn keeps dropping", None, None), (2, "VIEW", None, vpn, None),
        (3, "HELPFUL", None, vpn, True), (4, "NOT_HELPFUL", None, reset, False),
    ]
    assert recorded["steps"][3]["text"] == "Found “Reset the VPN client” not helpful"
    # the answers are the customer's votes on the articles, and the view is counted
    assert carol.gql(ARTICLE, a=vpn)["article"] == {"viewCount": 1, "helpfulCount": 1, "notHelpfulCount": 0,
                                                    "viewerRating": {"helpful": True}}
    assert carol.gql(ARTICLE, a=reset)["article"]["notHelpfulCount"] == 1

    # when the customer asks for help
    escalated = carol.mutate(ESCALATE, s=sid)
    case, after = escalated["case"], escalated["session"]

    # then a SELF_SERVICE case opens for them, carrying the session
    assert (case["subject"], case["channel"], case["status"], case["customer"]) == (
        "vpn keeps dropping", "SELF_SERVICE", "NEW", {"id": "carol"})
    assert case["description"] == (
        "Tried in self-service before asking for help:\n- Searched for “vpn keeps dropping”\n"
        "- Read “VPN drops after 10 minutes”\n- Found “VPN drops after 10 minutes” helpful\n"
        "- Found “Reset the VPN client” not helpful")
    assert (after["status"], after["case"]) == ("ESCALATED", {"id": case["id"]})
    expected = [(1, "case.created"), (2, "selfservice.searched"), (3, "selfservice.viewed"),
                (4, "selfservice.rated"), (5, "selfservice.rated")]
    for reader in (carol, ann):  # the customer and the agent read the same first entries
        timeline = history(reader, f"case:{case['id']}")
        assert [(e["seq"], e["kind"]) for e in timeline] == expected
        assert {e["visibility"] for e in timeline} == {"PUBLIC"}
        assert {e["actor"]["id"] for e in timeline} == {"carol"}
        assert timeline[1]["data"]["query"] == "vpn keeps dropping"
        assert (timeline[3]["data"]["articleId"], timeline[3]["data"]["helpful"]) == (vpn, True)
        assert timeline[4]["summary"] == "Found “Reset the VPN client” not helpful"
    agent_view = ann.gql(CASE, c=case["id"])["case"]
    assert agent_view["selfServiceSession"]["id"] == sid
    assert [s["kind"] for s in agent_view["selfServiceSession"]["steps"]] == ["SEARCH", "VIEW", "HELPFUL",
                                                                             "NOT_HELPFUL"]

    # a session is escalated once; an escalated session takes no more records
    again = carol.mutate_error(ESCALATE, s=sid)
    assert (again["code"], again["field"]) == ("CONFLICT", "sessionId")
    late = carol.mutate_error(RECORD, input={"sessionId": sid, "kind": "SEARCH", "query": "more"})
    assert (late["code"], late["field"]) == ("CONFLICT", "sessionId")
    cases = carol.gql("{ cases { edges { node { id } } } }")["cases"]["edges"]
    assert [c["node"]["id"] for c in cases] == [case["id"]]
    # the session's own stream tells the story too
    assert [e["kind"] for e in history(carol, f"selfservice:{sid}")] == [
        "selfservice.started", "selfservice.searched", "selfservice.viewed", "selfservice.rated",
        "selfservice.rated", "selfservice.escalated"]


def test_escalation_with_subject_and_description_and_no_steps(user: Users) -> None:
    carol = user("carol", "customer")
    sid = carol.mutate(START, input={})["session"]["id"]
    case = carol.mutate(ESCALATE, s=sid, subject="Billing question", d="Why was I charged twice?")["case"]
    assert (case["subject"], case["description"], case["channel"]) == ("Billing question", "Why was I charged twice?",
                                                                       "SELF_SERVICE")
    assert [e["kind"] for e in history(carol, f"case:{case['id']}")] == ["case.created"]
    # no steps at all: the default subject says where it came from
    other = carol.mutate(START, input={})["session"]["id"]
    assert carol.mutate(ESCALATE, s=other)["case"]["subject"] == "Help request from self-service"


def test_resolve_then_change_of_mind(user: Users) -> None:
    carol = user("carol", "customer")
    sid = carol.mutate(START, input={})["session"]["id"]
    step(carol, sid, "SEARCH", query="invoice pdf")
    resolved = carol.mutate(RESOLVE, s=sid)["session"]
    assert resolved["status"] == "RESOLVED" and resolved["resolvedAt"]
    assert carol.mutate_error(RESOLVE, s=sid)["code"] == "CONFLICT"
    assert carol.mutate_error(RECORD, input={"sessionId": sid, "kind": "SEARCH", "query": "x"})["code"] == "CONFLICT"
    # the customer may still ask for help afterwards (it then counts as escalated, not deflected)
    assert carol.mutate(ESCALATE, s=sid)["session"]["status"] == "ESCALATED"


def test_access_and_bad_input(user: Users) -> None:
    pat, carol, dave = user("pat", "agent", kcs="publisher"), user("carol", "customer"), user("dave", "customer")
    internal = article(pat, "Internal runbook")
    sid = carol.mutate(START, input={})["session"]["id"]

    # staff do not run self-service sessions; other customers do not see or touch this one
    assert pat.mutate_error(START, input={})["code"] == "FORBIDDEN"
    assert dave.gql(GET, id=sid)["selfServiceSession"] is None
    assert pat.gql(GET, id=sid)["selfServiceSession"]["customer"] == {"id": "carol"}
    foreign = dave.mutate_error(RECORD, input={"sessionId": sid, "kind": "SEARCH", "query": "x"})
    assert (foreign["code"], foreign["field"]) == ("NOT_FOUND", "sessionId")
    assert dave.mutate_error(ESCALATE, s=sid)["code"] == "NOT_FOUND"
    with pytest.raises(GraphQLErrors) as refused:
        dave.gql(HISTORY, s=f"selfservice:{sid}")
    assert refused.value.codes == ["NOT_FOUND"]

    # bad steps are refused and nothing is recorded
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"kind": "SEARCH"}, "INVALID", "query"),
        ({"kind": "SEARCH", "query": "   "}, "INVALID", "query"),
        ({"kind": "SEARCH", "query": "x" * 501}, "INVALID", "query"),
        ({"kind": "SEARCH", "query": "x", "articleId": internal}, "INVALID", "articleId"),
        ({"kind": "VIEW"}, "INVALID", "articleId"),
        ({"kind": "VIEW", "query": "x", "articleId": internal}, "INVALID", "query"),
        ({"kind": "VIEW", "articleId": internal}, "NOT_FOUND", "articleId"),  # not published: unseen
        ({"kind": "HELPFUL", "articleId": "art_000000000000000000000000"}, "NOT_FOUND", "articleId"),
    ]
    for fields, code, field in bad:
        error = carol.mutate_error(RECORD, input={"sessionId": sid, **fields})
        assert (error["code"], error["field"]) == (code, field), fields
    assert carol.gql(GET, id=sid)["selfServiceSession"]["steps"] == []
    assert carol.mutate_error(START, input={"context": {"blob": "x" * 5000}})["field"] == "context"
    assert carol.mutate_error(START, input={"context": [1, 2]})["field"] == "context"
    long_subject = carol.mutate_error(ESCALATE, s=sid, subject="s" * 301)
    assert (long_subject["code"], long_subject["field"]) == ("INVALID", "subject")
    assert carol.gql(GET, id=sid)["selfServiceSession"]["status"] == "ACTIVE"
