"""`suggestedArticles`: ranking from the case's words, reasons, access rules, and `case.suggestions_changed`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors
from tests.test_search import CASE_UPDATE, COMMENT, article, case

Users = Callable[..., Client]

SUGGEST = """query($id: ID!, $first: Int) { suggestedArticles(caseId: $id, first: $first) {
  article { id title } score reason } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node {
  kind visibility data summary } } } }"""
SUBSCRIBE = """subscription($id: ID!) { caseActivity(caseId: $id) { kind visibility data } }"""


@pytest.fixture
def editor(user: Users) -> Client:
    return user("ed", ["editor", "agent"], kcs="publisher")


@pytest.fixture
def kb(editor: Client) -> dict[str, str]:
    return {
        "vpn": article(editor, "VPN disconnects every few minutes", issue="The VPN connection drops repeatedly.",
                       resolution="Update the client; switch the protocol to TCP.", tags=["vpn"]),
        "printer": article(editor, "Printer shows offline", issue="Windows lists the printer as offline.",
                           resolution="Remove and add the printer again."),
        "password": article(editor, "Reset a forgotten password", issue="You cannot sign in.",
                            resolution="Use the Forgot password link."),
        "internal": article(editor, "VPN gateway keepalive tuning (internal)", publish=False,
                            issue="VPN tunnels drop when the gateway keepalive is short.", tags=["vpn"]),
    }


def suggest(client: Client, case_id: str, first: int | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.gql(SUGGEST, id=case_id, first=first)["suggestedArticles"]
    return found


def changes(client: Client, case_id: str) -> list[dict[str, Any]]:
    edges = client.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]
    return [e["node"] for e in edges if e["node"]["kind"] == "case.suggestions_changed"]


def test_suggestions_rank_by_the_case_words_with_a_reason(user: Users, kb: dict[str, str]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "VPN keeps disconnecting", "Since Monday the tunnel drops every few minutes at home.")
    found = suggest(alice, case_id)
    assert {s["article"]["id"] for s in found[:2]} == {kb["vpn"], kb["internal"]}  # staff see internal ones too
    top = next(s for s in found if s["article"]["id"] == kb["vpn"])
    assert top["score"] > 0
    assert top["reason"].startswith("matches 'vpn'")
    assert "in subject" in top["reason"] and "'disconnecting'" in top["reason"]
    assert kb["printer"] not in [s["article"]["id"] for s in found]
    assert len(suggest(alice, case_id, first=1)) == 1


def test_customers_get_only_published_articles(user: Users, kb: dict[str, str]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "VPN drops", "The VPN tunnel drops, maybe the gateway keepalive?")
    assert kb["internal"] in [s["article"]["id"] for s in suggest(alice, case_id)]
    mine = [s["article"]["id"] for s in suggest(carol, case_id)]
    assert mine and mine[0] == kb["vpn"] and kb["internal"] not in mine


def test_unreadable_cases_are_not_found(user: Users, kb: dict[str, str]) -> None:
    case_id = case(user("carol", "customer"), "VPN drops")
    for stranger in (user("dan", "customer"), user("alice", "agent", tenant_id="other-" + case_id[-8:])):
        with pytest.raises(GraphQLErrors) as err:
            suggest(stranger, case_id)
        assert err.value.codes == ["NOT_FOUND"]
    with pytest.raises(GraphQLErrors) as err:
        suggest(user("alice", "agent"), "not-a-case")
    assert err.value.codes == ["INVALID"]


def test_update_of_subject_or_description_emits_suggestions_changed(user: Users, kb: dict[str, str]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "Question about my account", "Nothing works today.")
    assert changes(alice, case_id) == []  # nothing matches yet: nothing to announce
    # when the customer describes the actual problem
    with alice.subscribe(SUBSCRIBE, id=case_id) as sub:
        carol.mutate(CASE_UPDATE, input={"caseId": case_id, "description": "The office printer shows offline."})
        kinds = [sub.next()["caseActivity"] for _ in range(2)]
    assert [k["kind"] for k in kinds] == ["case.updated", "case.suggestions_changed"]
    (event,) = changes(alice, case_id)
    assert event["visibility"] == "INTERNAL"
    assert event["data"]["articleIds"][0] == kb["printer"] and event["data"]["added"][0] == kb["printer"]
    assert event["data"]["removed"] == []
    # customers never see it
    assert changes(carol, case_id) == []
    # a change that does not touch subject/description recomputes nothing
    alice.mutate(CASE_UPDATE, input={"caseId": case_id, "priority": "HIGH"})
    # a description change that keeps the same suggestions announces nothing
    carol.mutate(CASE_UPDATE, input={"caseId": case_id, "description": "The office printer is offline."})
    assert len(changes(alice, case_id)) == 1
    # a subject change towards another topic does
    carol.mutate(CASE_UPDATE, input={"caseId": case_id, "subject": "Forgot my password",
                                     "description": "I cannot sign in."})
    latest = changes(alice, case_id)[-1]
    assert latest["data"]["articleIds"][0] == kb["password"]
    assert kb["printer"] in latest["data"]["removed"]


def test_customer_comment_updates_suggestions_but_staff_notes_do_not(user: Users, kb: dict[str, str]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "Help needed", "Something is broken.")
    alice.mutate(COMMENT, id=case_id, body="Internal: probably the VPN keepalive again.", vis="INTERNAL")
    alice.mutate(COMMENT, id=case_id, body="Could you tell us more? Is it the VPN?", vis="PUBLIC")
    assert changes(alice, case_id) == []
    carol.mutate(COMMENT, id=case_id, body="Yes, my VPN disconnects every few minutes.", vis="PUBLIC")
    (event,) = changes(alice, case_id)
    assert kb["vpn"] in event["data"]["articleIds"]
    top = next(s for s in suggest(alice, case_id) if s["article"]["id"] == kb["vpn"])
    assert "in latest comment" in top["reason"]


def test_a_new_case_stores_its_suggestions_without_an_event(user: Users, kb: dict[str, str]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "VPN disconnects", "The VPN drops every few minutes.")
    assert changes(alice, case_id) == []  # the timeline starts with what the customer did
    # rewording that keeps the same suggestions announces nothing; a new topic does, against that baseline
    carol.mutate(CASE_UPDATE, input={"caseId": case_id, "description": "My VPN drops every few minutes."})
    assert changes(alice, case_id) == []
    carol.mutate(CASE_UPDATE, input={"caseId": case_id, "subject": "Printer offline",
                                     "description": "The printer shows offline."})
    (event,) = changes(alice, case_id)
    assert kb["vpn"] in event["data"]["removed"] and event["data"]["articleIds"][0] == kb["printer"]
