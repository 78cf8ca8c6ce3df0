"""Users: the viewer and the `online` flag fed by presence heartbeats."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness import Client

HEARTBEAT = """mutation { presenceUpdate(input: {status: AVAILABLE}) { errors { code message } } }"""
ONLINE = "{ viewer { id online } }"


def test_online_follows_heartbeats_and_hides_staff_from_customers(user: Callable[..., Client]) -> None:
    # given an agent who heartbeats and a customer who does not
    agent, customer = user("alice", "agent"), user("carol", "customer")
    assert agent.gql(ONLINE)["viewer"] == {"id": "alice", "online": False}
    case = customer.mutate('mutation { caseCreate(input: {subject: "Help"}) { errors { code } case { id } } }')
    agent.mutate(HEARTBEAT)
    agent.mutate("mutation($c: ID!) { caseAssign(input: {caseId: $c, assigneeId: \"alice\"}) { errors { code } } }",
                 c=case["case"]["id"])
    # then staff see the agent online, the customer does not learn it
    query = "query($c: ID!) { case(id: $c) { assignee { id online } } }"
    assert agent.gql(query, c=case["case"]["id"])["case"]["assignee"] == {"id": "alice", "online": True}
    assert customer.gql(query, c=case["case"]["id"])["case"]["assignee"]["online"] is False
    assert agent.gql(ONLINE)["viewer"]["online"] is True
