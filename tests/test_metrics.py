"""Knowledge and support metrics on a small constructed scenario with hand-computed values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors
from tests.test_knowledge import CAPTURE, LINK, article, publish

Users = Callable[..., Client]

CREATE_CASE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code } case { id } } }"""
ASSIGN = """mutation($c: ID!, $u: ID) { caseAssign(input: {caseId: $c, assigneeId: $u}) {
  errors { code } case { id } } }"""
STATUS = """mutation($c: ID!, $s: CaseStatus!) { caseSetStatus(input: {caseId: $c, status: $s}) {
  errors { code message } case { id status } } }"""
COMMENT = """mutation($s: ID!, $b: String!, $v: Visibility! = PUBLIC) {
  commentAdd(input: {subjectId: $s, body: $b, visibility: $v}) { errors { code } comment { id } } }"""
RATE = """mutation($a: ID!, $h: Boolean!) { articleRate(input: {articleId: $a, helpful: $h}) {
  errors { code } article { id score flagged } } }"""
FEEDBACK = """mutation($a: ID!) { articleFeedbackAdd(input: {articleId: $a, kind: OUTDATED, body: "Old screenshots"}) {
  errors { code } feedback { id } } }"""
RESOLVE_FEEDBACK = """mutation($f: ID!) { articleFeedbackResolve(input: {feedbackId: $f, status: ACCEPTED}) {
  errors { code } feedback { id } } }"""
START = """mutation { selfServiceStart(input: {}) { errors { code } session { id } } }"""
RESOLVE = """mutation($s: ID!) { selfServiceResolve(input: {sessionId: $s}) { errors { code } session { id } } }"""
ESCALATE = """mutation($s: ID!) { selfServiceEscalate(input: {sessionId: $s}) { errors { code } case { id } } }"""
KNOWLEDGE = """query($from: DateTime, $to: DateTime) { knowledgeMetrics(from: $from, to: $to) {
  casesClosed casesWithLinks linkRate reuseCount knownIssues newIssues
  topArticles { article { id } casesClosed }
  articlesCreated articlesCapturedFromCases flaggedCount lowRatedCount staleCount ratedCount averageScore
  contributors { user { id } casesSolved articlesCreated articlesImproved feedbackHandled } } }"""
SUPPORT = """query($from: DateTime, $to: DateTime) { supportMetrics(from: $from, to: $to) {
  casesOpened casesClosed firstContactResolved casesReopened firstContactResolution
  selfServiceSessions selfServiceEscalated selfServiceResolved selfServiceDeflection } }"""


def iso(when: datetime) -> str:
    return when.isoformat()


def new_case(opener: Client, subject: str) -> str:
    case_id: str = opener.mutate(CREATE_CASE, s=subject)["case"]["id"]
    return case_id


def scenario(user: Users) -> dict[str, Any]:
    """Six cases, three self-service sessions, four articles; see the expectations in the tests."""
    pat, ann = user("pat", "agent", kcs="publisher"), user("ann", "agent")
    carol, dave = user("carol", "customer"), user("dave", "customer")
    ann.gql("{ viewer { id } }")  # known to the tenant, so cases can be assigned to her
    old = article(pat, "Known VPN fix")  # exists before every case: linking it is reuse
    bad = article(pat, "Confusing printer guide")
    publish(pat, old)
    publish(pat, bad)

    c1, c2, c3, c4, c5, c6 = (new_case(carol if i % 2 else dave, f"case {i}") for i in range(1, 7))
    # c1: ann, solved by the known article with one public reply — first contact, known issue
    ann.mutate(ASSIGN, c=c1, u="ann")
    pat.mutate(LINK, c=c1, a=old, r="SOLVED_BY")
    pat.mutate(LINK, c=c1, a=old, r="REFERENCED")  # same pair: one reuse
    ann.mutate(COMMENT, s=c1, b="Try the known fix")
    ann.mutate(STATUS, c=c1, s="SOLVED")
    # c2: ann captures a new article from it, solves, it reopens and is solved again — a new issue
    ann.mutate(ASSIGN, c=c2, u="ann")
    new = ann.mutate(CAPTURE, c=c2)["article"]["id"]
    ann.mutate(STATUS, c=c2, s="SOLVED")
    dave.mutate(STATUS, c=c2, s="OPEN")  # c2 is dave's (even cases)
    ann.mutate(STATUS, c=c2, s="SOLVED")
    # c3: reassigned from ann to pat, two public replies, no link
    ann.mutate(ASSIGN, c=c3, u="ann")
    ann.mutate(ASSIGN, c=c3, u="pat")
    pat.mutate(COMMENT, s=c3, b="Looking")
    pat.mutate(COMMENT, s=c3, b="Fixed")
    pat.mutate(STATUS, c=c3, s="CLOSED")
    # c4: linked (reuse) but still open
    pat.mutate(LINK, c=c4, a=old, r="REFERENCED")
    # c5: the customer solves it alone after commenting (customer comments are not staff replies)
    carol.mutate(COMMENT, s=c5, b="Never mind, found it")
    carol.mutate(STATUS, c=c5, s="SOLVED")
    # c6: ann, one public and one internal reply, solved by the known article
    ann.mutate(ASSIGN, c=c6, u="ann")
    ann.mutate(COMMENT, s=c6, b="internal note", v="INTERNAL")
    ann.mutate(COMMENT, s=c6, b="Here is the fix")
    pat.mutate(LINK, c=c6, a=old, r="SOLVED_BY")
    ann.mutate(STATUS, c=c6, s="SOLVED")

    # ratings: five not-helpful votes flag the printer guide; one helpful vote on the known fix
    for i in range(5):
        user(f"reader{i}", "customer").mutate(RATE, a=bad, h=False)
    scored = carol.mutate(RATE, a=old, h=True)["article"]
    # feedback handled by pat
    feedback = dave.mutate(FEEDBACK, a=old)["feedback"]["id"]
    pat.mutate(RESOLVE_FEEDBACK, f=feedback)

    # self-service: one escalated (opens a 7th case), one resolved, one abandoned
    sessions = [carol.mutate(START)["session"]["id"] for _ in range(3)]
    carol.mutate(ESCALATE, s=sessions[0])
    carol.mutate(RESOLVE, s=sessions[1])
    return {"old": old, "new": new, "bad": bad, "old_score": scored["score"]}


def test_knowledge_and_support_metrics_on_a_constructed_scenario(user: Users) -> None:
    # given
    made = scenario(user)
    sue = user("sue", "supervisor")

    # when
    knowledge = sue.gql(KNOWLEDGE)["knowledgeMetrics"]
    support = sue.gql(SUPPORT)["supportMetrics"]

    # then — closed in the window: c1, c2, c3, c5, c6; linked among them: c1, c2, c6
    assert made["old_score"] == pytest.approx(1 / (1 + 1.959964**2), abs=1e-6)  # Wilson lower bound of 1/1
    assert knowledge == {
        "casesClosed": 5, "casesWithLinks": 3, "linkRate": 0.6,
        "reuseCount": 3,  # (c1, old), (c4, old), (c6, old): pairs, whatever the relations
        "knownIssues": 2, "newIssues": 1,  # c1 and c6 reuse; c2 only has its captured article
        "topArticles": [{"article": {"id": made["old"]}, "casesClosed": 2},
                        {"article": {"id": made["new"]}, "casesClosed": 1}],
        "articlesCreated": 3, "articlesCapturedFromCases": 1,
        "flaggedCount": 1, "lowRatedCount": 1, "staleCount": 0, "ratedCount": 2,
        "averageScore": round((made["old_score"] + 0.0) / 2, 4),
        "contributors": [
            {"user": {"id": "ann"}, "casesSolved": 3, "articlesCreated": 1, "articlesImproved": 0,
             "feedbackHandled": 0},
            {"user": {"id": "pat"}, "casesSolved": 1, "articlesCreated": 2, "articlesImproved": 2,
             "feedbackHandled": 1},
        ],
    }
    # first contact: c1, c5, c6 (c2 reopened, c3 reassigned with two replies); 7 opened incl. the escalation
    assert support == {
        "casesOpened": 7, "casesClosed": 5, "firstContactResolved": 3, "casesReopened": 1,
        "firstContactResolution": 0.6, "selfServiceSessions": 3, "selfServiceEscalated": 1,
        "selfServiceResolved": 1, "selfServiceDeflection": 0.6667,
    }

    # a window ending 200 days from now makes both validated articles stale (180 days without update)
    now = datetime.now(UTC)
    later = sue.gql(KNOWLEDGE, **{"from": iso(now - timedelta(days=1)), "to": iso(now + timedelta(days=200))})
    assert later["knowledgeMetrics"]["staleCount"] == 2
    # a window before everything counts nothing that happened in it
    past = {"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}
    empty = sue.gql(KNOWLEDGE, **past)["knowledgeMetrics"]
    assert (empty["casesClosed"], empty["linkRate"], empty["reuseCount"], empty["topArticles"],
            empty["articlesCreated"], empty["contributors"]) == (0, 0.0, 0, [], 0, [])
    assert sue.gql(SUPPORT, **past)["supportMetrics"] == {
        "casesOpened": 0, "casesClosed": 0, "firstContactResolved": 0, "casesReopened": 0,
        "firstContactResolution": 0.0, "selfServiceSessions": 0, "selfServiceEscalated": 0,
        "selfServiceResolved": 0, "selfServiceDeflection": 0.0,
    }


def test_metrics_are_tenant_scoped(user: Users, tenant: str) -> None:
    # given activity in this tenant
    carol, ann = user("carol", "customer"), user("ann", "agent")
    case_id = new_case(carol, "Ours")
    ann.mutate(STATUS, c=case_id, s="SOLVED")
    carol.mutate(START)
    # when a supervisor of another tenant with one case of its own asks
    other = tenant + "o"
    theirs = user("sue", "supervisor", tenant_id=other)
    new_case(user("erin", "customer", tenant_id=other), "Theirs")
    # then each sees only their own
    assert theirs.gql(SUPPORT)["supportMetrics"] | {} == {
        "casesOpened": 1, "casesClosed": 0, "firstContactResolved": 0, "casesReopened": 0,
        "firstContactResolution": 0.0, "selfServiceSessions": 0, "selfServiceEscalated": 0,
        "selfServiceResolved": 0, "selfServiceDeflection": 0.0,
    }
    ours = user("sue", "supervisor").gql(SUPPORT)["supportMetrics"]
    assert (ours["casesOpened"], ours["casesClosed"], ours["firstContactResolution"], ours["selfServiceSessions"],
            ours["selfServiceDeflection"]) == (1, 1, 1.0, 1, 1.0)


def test_metrics_access_and_bad_windows(user: Users) -> None:
    for who in (user("ann", "agent"), user("carol", "customer"), user("xavier", "expert")):
        for q in (KNOWLEDGE, SUPPORT):
            with pytest.raises(GraphQLErrors) as refused:
                who.gql(q)
            assert refused.value.codes == ["FORBIDDEN"]
    assert user("ed", "editor").gql(KNOWLEDGE)["knowledgeMetrics"]["casesClosed"] == 0
    assert user("root", "admin").gql(SUPPORT)["supportMetrics"]["casesOpened"] == 0
    sue = user("sue", "supervisor")
    for window in ({"from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
                   {"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
                   {"from": "2015-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}):
        for q in (KNOWLEDGE, SUPPORT):
            with pytest.raises(GraphQLErrors) as bad:
                sue.gql(q, **window)
            assert bad.value.codes == ["INVALID"]
            assert bad.value.errors[0]["extensions"]["field"] == "from"
