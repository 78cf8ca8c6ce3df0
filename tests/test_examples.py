"""GraphiQL's preloaded examples (valid, and working against a hub) and the Python client example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, OperationType, parse, validate
from graphql.language import FieldNode, NonNullTypeNode
from starlette.routing import Mount
from websockets import Subprotocol
from websockets.sync.client import ClientConnection, connect

from hub.graphiql import Example, dev_routes, examples
from hub.settings import Settings
from schema import build
from tests.harness import ROOT, Client, HubProcess

SCHEMA = build(Settings(env="development"))


def operations(example: Example) -> list[OperationDefinitionNode]:
    return [d for d in parse(example.query).definitions if isinstance(d, OperationDefinitionNode)]


def root_fields(op: OperationDefinitionNode) -> set[str]:
    return {s.name.value for s in op.selection_set.selections if isinstance(s, FieldNode)}


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.title)
def test_every_graphiql_example_is_valid_against_the_schema(example: Example) -> None:
    # every document validates (named operations, unique names, known fields and arguments)
    errors = validate(SCHEMA._schema, parse(example.query))
    assert errors == [], [e.message for e in errors]
    variables = json.loads(example.variables or "{}")
    for op in operations(example):
        assert op.name is not None, "GraphiQL picks operations by name"
        # and the tab's variables hold every required variable of every operation
        required = {v.variable.name.value for v in op.variable_definitions or ()
                    if isinstance(v.type, NonNullTypeNode) and v.default_value is None}
        assert required <= set(variables), f"{op.name.value} lacks {required - set(variables)}"


def test_examples_teach_every_domain() -> None:
    used: dict[OperationType, set[str]] = {t: set() for t in OperationType}
    for example in examples():
        for op in operations(example):
            used[op.operation] |= root_fields(op)
    assert {"viewer", "cases", "case", "thread", "activity", "presence", "experts", "chatRooms", "articles",
            "search", "suggestedArticles", "forumThreads", "forumThread", "ideas", "notifications",
            "supportMetrics", "knowledgeMetrics"} <= used[OperationType.QUERY]
    assert {"caseCreate", "caseSetStatus", "caseAssign", "commentAdd", "presenceUpdate", "presenceLeave",
            "chatRoomCreate", "chatMessageSend", "chatTyping", "articleCreate", "articleRate",
            "forumQuestionPost", "forumAnswerPost", "forumAnswerAccept", "ideaSubmit", "ideaVote",
            "ideaSetStatus", "notificationMarkRead"} <= used[OperationType.MUTATION]
    assert {"caseActivity", "articleActivity", "presenceChanged", "chatEvents",
            "notificationReceived"} <= used[OperationType.SUBSCRIPTION]


def test_graphiql_page_carries_the_examples_and_the_token_plumbing(hub: HubProcess) -> None:
    # when a browser asks for /graphql
    response = httpx.get(f"{hub.url}/graphql", headers={"Accept": "text/html"})

    # then it gets the hub's GraphiQL with every example tab embedded
    assert response.status_code == 200
    page = response.text
    embedded = re.search(r'<script type="application/json" id="hub-examples">(.*?)</script>', page, re.S)
    assert embedded is not None
    tabs = json.loads(embedded.group(1))
    assert [t["query"] for t in tabs] == [e.query for e in examples()]
    assert [t["variables"] for t in tabs] == [e.variables for e in examples()]
    # and a token bar feeding both the HTTP header and the WebSocket's connection_init
    assert 'id="hub-token"' in page
    assert 'Authorization: "Bearer " + token' in page
    assert 'wsConnectionParams: token ? { authorization: "Bearer " + token }' in page


def test_example_front_ends_are_served_outside_production_only(hub: HubProcess) -> None:
    # the test hub (HUB_ENV=test) serves them
    for path, marker in (("/widget/", "widget.js"), ("/forum/", "forum.js")):
        response = httpx.get(f"{hub.url}{path}")
        assert response.status_code == 200 and marker in response.text
    assert "caseActivity" in httpx.get(f"{hub.url}/widget/widget.js").text
    # production mounts nothing
    assert [r.path for r in dev_routes(Settings(env="development")) if isinstance(r, Mount)] == ["/widget", "/forum"]
    assert dev_routes(Settings(env="production", jwt_secret="s" * 40)) == []


class Walkthrough:
    """Runs example operations by name, feeding ids from earlier payloads into later variables."""

    def __init__(self, clients: dict[str, Client]) -> None:
        self.clients = clients
        self.tabs = {op.name.value: e for e in examples() for op in operations(e) if op.name}
        self.known: dict[str, Any] = {}

    def variables(self, name: str) -> dict[str, Any]:
        tab_vars: dict[str, Any] = json.loads(self.tabs[name].variables or "{}")
        return {k: self.known.get(k, v) for k, v in tab_vars.items()}

    def run(self, name: str, as_: str = "staff") -> dict[str, Any]:
        response = self.clients[as_].http.post("/graphql", json={
            "query": self.tabs[name].query, "operationName": name, "variables": self.variables(name)})
        body = response.json()
        assert not body.get("errors"), (name, body["errors"])
        data: dict[str, Any] = body["data"]
        for value in data.values():
            if isinstance(value, dict) and "errors" in value:
                assert value["errors"] == [], (name, value["errors"])
        return data


    @contextmanager
    def subscribe(self, name: str, as_: str = "staff") -> Iterator[ClientConnection]:
        """One named operation of a tab over graphql-transport-ws (GraphiQL sends its name too)."""
        client = self.clients[as_]
        with connect(client.hub.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": self.tabs[name].query, "operationName": name, "variables": self.variables(name)}}))
            yield ws

    @staticmethod
    def next(ws: ClientConnection) -> dict[str, Any]:
        message = json.loads(ws.recv(timeout=10))
        assert message["type"] == "next" and not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data


def test_example_operations_work_in_order_against_the_hub(user: Callable[..., Client]) -> None:
    staff = user("alice", ["agent", "supervisor", "editor"], kcs="publisher", skills=["vpn"])
    carol, bob = user("carol", "customer"), user("bob", "agent")
    bob.gql("{ viewer { id } }")  # chat members must be known users
    walk = Walkthrough({"staff": staff, "customer": carol, "bob": bob})

    walk.run("Viewer")
    walk.run("Overview")
    case = walk.run("CaseCreate")["caseCreate"]["case"]
    k = walk.known
    k.update(caseId=case["id"], subjectId=case["id"], resourceId=case["id"], stream=f"case:{case['id']}",
             version=case["version"])
    assert walk.run("Cases")["cases"]["edges"][0]["node"]["id"] == case["id"]
    walk.run("CaseSetStatus")
    walk.run("CaseAssign")
    walk.run("CommentAdd")
    walk.run("InternalNote")
    assert len(walk.run("Thread")["thread"]["comments"]["edges"]) == 2
    assert walk.run("Case")["case"]["assignee"]["id"] == "alice"
    kinds = [e["node"]["kind"] for e in walk.run("ActivityHistory")["activity"]["edges"]]
    assert kinds[0] == "case.created" and "comment.added" in kinds
    walk.run("PresenceUpdate")
    walk.run("Presence")
    walk.run("PresenceLeave")
    walk.run("Experts")

    k["roomId"] = walk.run("ChatRoomCreate")["chatRoomCreate"]["room"]["id"]
    walk.run("ChatMessageSend")
    walk.run("ChatTyping")
    assert walk.run("ChatRooms")["chatRooms"]["edges"][0]["node"]["id"] == k["roomId"]

    k["articleId"] = walk.run("ArticleCreate")["articleCreate"]["article"]["id"]
    walk.run("Articles")
    walk.run("ArticleRate", as_="bob")
    walk.run("Search")
    walk.run("SuggestedArticles")

    posted = walk.run("ForumQuestionPost", as_="customer")["forumQuestionPost"]
    k["threadId"] = posted["thread"]["id"]
    k["answerId"] = walk.run("ForumAnswerPost")["forumAnswerPost"]["answer"]["id"]
    walk.run("ForumAnswerAccept")
    assert walk.run("ForumThread")["forumThread"]["status"] == "RESOLVED"
    walk.run("ForumThreads")

    k["ideaId"] = walk.run("IdeaSubmit", as_="customer")["ideaSubmit"]["idea"]["id"]
    walk.run("IdeaVote")
    walk.run("IdeaSetStatus")
    walk.run("Ideas")

    inbox = walk.run("Notifications", as_="customer")["notifications"]["edges"]
    k["ids"] = [e["node"]["id"] for e in inbox]
    assert k["ids"], "the idea's status change notifies its submitter"
    walk.run("NotificationMarkRead", as_="customer")
    walk.run("SupportMetrics")
    walk.run("KnowledgeMetrics")

    # subscriptions: the presence snapshot comes first; case activity streams what happens next
    with walk.subscribe("PresenceChanged") as ws:
        assert walk.next(ws)["presenceChanged"]["kind"] == "SNAPSHOT"
    with walk.subscribe("CaseActivity") as ws:
        walk.run("CommentAdd")
        assert walk.next(ws)["caseActivity"]["kind"] == "comment.added"


def run_client(hub: HubProcess, token: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_URL": hub.url, "HUB_TOKEN": token}
    return subprocess.run([sys.executable, str(ROOT / "examples/python/client.py"), *args],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


COMMENT = """mutation($id: ID!, $body: String!, $v: Visibility!) {
  commentAdd(input: {subjectId: $id, body: $body, visibility: $v}) { errors { code message field } } }"""


def test_python_client_opens_a_case_and_prints_its_public_activity(
    hub: HubProcess, user: Callable[..., Client],
) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    env = {**os.environ, "HUB_URL": hub.url, "HUB_TOKEN": carol.token}

    # when the client opens a case and follows it for four events
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples/python/client.py"), "--subject", "Printer on fire",
                             "--count", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        opened = proc.stdout.readline()
        match = re.match(r"opened (case_\w+): Printer on fire$", opened.strip())
        assert match, opened + (proc.stderr.read() if proc.stderr else "")
        case_id = match.group(1)
        # and staff reply in public, note internally, and reply again
        alice.mutate(COMMENT, id=case_id, body="We are sending a technician", v="PUBLIC")
        alice.mutate(COMMENT, id=case_id, body="Customer printer is ancient", v="INTERNAL")
        alice.mutate(COMMENT, id=case_id, body="Technician arrives at 3pm", v="PUBLIC")
        alice.mutate("""mutation($id: ID!) { caseSetStatus(input: {caseId: $id, status: PENDING}) {
          errors { code message field } } }""", id=case_id)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()

    # then it prints the case's public events in order, each once, and none of the internal note
    lines = out.strip().splitlines()
    assert proc.returncode == 0, err
    assert [line.split(":")[0] for line in lines] == [
        "#1 case.created", "#2 comment.added", "#4 comment.added", "#5 case.status_changed"], lines
    assert "We are sending a technician" in lines[1] and "Technician arrives at 3pm" in lines[2]
    assert "ancient" not in out


def test_python_client_replays_history_of_an_existing_case(hub: HubProcess, user: Callable[..., Client]) -> None:
    # given a case with history
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate("""mutation { caseCreate(input: {subject: "Old case"}) {
      errors { code message field } case { id } } }""")["case"]["id"]
    alice.mutate(COMMENT, id=case_id, body="first reply", v="PUBLIC")

    # when the client follows it
    result = run_client(hub, carol.token, "--case-id", case_id, "--count", "2")

    # then the history comes first
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("#1 case.created: ")
    assert second.startswith("#2 comment.added: ") and second.endswith(" — 'first reply'")


def test_python_client_without_a_token_explains_itself(hub: HubProcess) -> None:
    result = run_client(hub, "", "--subject", "x")
    assert result.returncode == 2
    assert "set HUB_TOKEN" in result.stderr
