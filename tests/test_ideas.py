"""Ideas through the public API: submit (from a case), vote once, closed ideas, status fan-out,
staff-only fields, internal discussion, anonymous portals."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.harness import Client, HubProcess
from tests.test_forum import COMMENT, COMMENTS, HISTORY, INBOX, SEARCH, Anonymous

ERR = "errors { code message field }"
FIELDS = """id title body status votes caseIds statusNote viewerVoted createdAt author { id }
  assessment { effort impact notes assessor { id } }"""
SUBMIT = f"""mutation($t: String!, $b: String!, $c: ID) {{ ideaSubmit(input: {{title: $t, body: $b, caseId: $c}}) {{
  {ERR} idea {{ {FIELDS} }} }} }}"""
VOTE = f"mutation($i: ID!) {{ ideaVote(input: {{ideaId: $i}}) {{ {ERR} idea {{ id votes viewerVoted }} }} }}"
UNVOTE = f"mutation($i: ID!) {{ ideaUnvote(input: {{ideaId: $i}}) {{ {ERR} idea {{ id votes viewerVoted }} }} }}"
STATUS = f"""mutation($i: ID!, $s: IdeaStatus!, $n: String! = "") {{ ideaSetStatus(input: {{ideaId: $i, status: $s,
  note: $n}}) {{ {ERR} idea {{ id status statusNote }} }} }}"""
LINK = f"""mutation($i: ID!, $c: ID!) {{ ideaLinkCase(input: {{ideaId: $i, caseId: $c}}) {{ {ERR}
  idea {{ id caseIds }} }} }}"""
ASSESS = f"""mutation($i: ID!, $e: Int, $m: Int, $n: String) {{ ideaAssess(input: {{ideaId: $i, effort: $e,
  impact: $m, notes: $n}}) {{ {ERR} idea {{ assessment {{ effort impact notes }} }} }} }}"""
IDEA = f"query($id: ID!) {{ idea(id: $id) {{ {FIELDS} }} }}"
IDEAS = """query($f: IdeaFilter) { ideas(filter: $f) { edges { node { id title votes status caseIds } } } }"""
CREATE_CASE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code } case { id } } }"""


def idea_notes(client: Client, idea_id: str) -> list[dict[str, Any]]:
    return [e["node"] for e in client.gql(INBOX)["notifications"]["edges"] if e["node"]["subjectId"] == idea_id]


def test_submit_vote_once_close_and_notify_everybody_concerned(user: Callable[..., Client]) -> None:
    # given an idea raised from carol's case, voted by dan and erin; frank has a linked case too
    carol, dan, erin, frank, gina = (user(n, "customer") for n in ("carol", "dan", "erin", "frank", "gina"))
    alice = user("alice", "agent")
    carol_case = carol.mutate(CREATE_CASE, s="Need dark mode")["case"]["id"]
    idea = carol.mutate(SUBMIT, t="Dark mode", b="Please add a dark theme", c=carol_case)["idea"]
    assert idea["status"] == "NEW" and idea["caseIds"] == [carol_case] and idea["votes"] == 0
    assert dan.mutate(VOTE, i=idea["id"])["idea"] == {"id": idea["id"], "votes": 1, "viewerVoted": True}
    assert dan.mutate(VOTE, i=idea["id"])["idea"]["votes"] == 1  # once per user: again changes nothing
    erin.mutate(VOTE, i=idea["id"])
    assert erin.mutate(UNVOTE, i=idea["id"])["idea"] == {"id": idea["id"], "votes": 1, "viewerVoted": False}
    erin.mutate(VOTE, i=idea["id"])
    frank_case = frank.mutate(CREATE_CASE, s="Eyes hurt at night")["case"]["id"]
    alice.mutate(LINK, i=idea["id"], c=frank_case)
    # when staff plan it with a public note
    planned = alice.mutate(STATUS, i=idea["id"], s="PLANNED", n="Coming in Q3")["idea"]
    assert planned["status"] == "PLANNED" and planned["statusNote"] == "Coming in Q3"
    # then the submitter, the voters and the linked case's customer are told; gina is not
    for client in (carol, dan, erin, frank):
        [note] = idea_notes(client, idea["id"])
        assert note["kind"] == "idea.status_changed" and "Q3" in note["summary"]
    assert idea_notes(gina, idea["id"]) == []
    # closed ideas refuse votes with a clear message; the count stays
    alice.mutate(STATUS, i=idea["id"], s="SHIPPED", n="Released in 4.2")
    refused = gina.mutate_error(VOTE, i=idea["id"])
    assert refused["code"] == "INVALID" and "SHIPPED" in refused["message"] and refused["field"] == "ideaId"
    assert dan.mutate_error(UNVOTE, i=idea["id"])["code"] == "INVALID"
    assert gina.gql(IDEA, id=idea["id"])["idea"]["votes"] == 2
    # customers cannot set statuses; bad statuses are refused
    assert carol.mutate_error(STATUS, i=idea["id"], s="DECLINED")["code"] == "FORBIDDEN"
    assert alice.mutate_error(STATUS, i=idea["id"], s="NEW")["field"] == "status"


def test_staff_only_fields_and_linked_cases(hub: HubProcess, tenant: str, user: Callable[..., Client]) -> None:
    carol, dan, alice = user("carol", "customer"), user("dan", "customer"), user("alice", "agent")
    carol_case = carol.mutate(CREATE_CASE, s="Export to CSV")["case"]["id"]
    dan_case = dan.mutate(CREATE_CASE, s="CSV please")["case"]["id"]
    idea = alice.mutate(SUBMIT, t="CSV export", b="Export reports as CSV", c=carol_case)["idea"]
    # a customer links their own case, not someone else's
    assert dan.mutate(LINK, i=idea["id"], c=dan_case)["idea"]["caseIds"] == [dan_case]
    assert dan.mutate_error(LINK, i=idea["id"], c=carol_case)["code"] == "NOT_FOUND"
    alice.mutate(ASSESS, i=idea["id"], e=2, m=5, n="INTERNAL-cheap-and-loved")
    assert alice.mutate_error(ASSESS, i=idea["id"], e=9)["field"] == "effort"
    assert carol.mutate_error(ASSESS, i=idea["id"], e=1)["code"] == "FORBIDDEN"
    staff = alice.gql(IDEA, id=idea["id"])["idea"]
    assert set(staff["caseIds"]) == {carol_case, dan_case}
    assert staff["assessment"] == {"effort": 2, "impact": 5, "notes": "INTERNAL-cheap-and-loved",
                                   "assessor": {"id": "alice"}}
    # customers see only their own case ids and no assessment, anywhere
    assert carol.gql(IDEA, id=idea["id"])["idea"]["caseIds"] == [carol_case]
    assert dan.gql(IDEAS)["ideas"]["edges"][0]["node"]["caseIds"] == [dan_case]
    customer_text = json.dumps([carol.gql(IDEA, id=idea["id"]), carol.gql(HISTORY, s=f"idea:{idea['id']}")])
    assert "INTERNAL-cheap" not in customer_text and dan_case not in customer_text
    # the idea discussion: customers comment publicly, staff also internally
    carol.mutate(COMMENT, s=idea["id"], b="Also Excel?", v="PUBLIC")
    alice.mutate(COMMENT, s=idea["id"], b="INTERNAL-needs-finance-signoff", v="INTERNAL")
    assert carol.mutate_error(COMMENT, s=idea["id"], b="x", v="INTERNAL")["code"] == "FORBIDDEN"
    assert carol.gql(COMMENTS, s=idea["id"])["thread"]["comments"]["totalCount"] == 1
    assert alice.gql(COMMENTS, s=idea["id"])["thread"]["comments"]["totalCount"] == 2
    # the linked case's history tells its customer about the link
    kinds = [e["node"]["kind"] for e in dan.gql(HISTORY, s=f"case:{dan_case}")["activity"]["edges"]]
    assert "idea.case_linked" in kinds
    # anonymous portals read public ideas only: no case ids, no assessment, no vote
    anon = Anonymous(hub, tenant)
    public = anon.gql(IDEA, id=idea["id"])["idea"]
    assert public["caseIds"] == [] and public["assessment"] is None and public["viewerVoted"] is False
    assert "INTERNAL" not in json.dumps(anon.gql(IDEAS))
    assert Anonymous(hub, tenant + "y").gql(IDEA, id=idea["id"])["idea"] is None


def test_bad_input_and_filters(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    assert carol.mutate_error(SUBMIT, t=" ", b="x")["field"] == "title"
    assert carol.mutate_error(SUBMIT, t="x", b="")["field"] == "body"
    assert carol.mutate_error(SUBMIT, t="x", b="y", c="nope")["field"] == "caseId"
    assert carol.mutate_error(VOTE, i="idea_000000000000000000000000")["code"] == "NOT_FOUND"
    assert alice.gql(IDEAS)["ideas"]["edges"] == []  # nothing half-written
    html = "<script>alert(1)</script>"
    a = carol.mutate(SUBMIT, t="Offline mode", b=html)["idea"]
    b = carol.mutate(SUBMIT, t="Bulk edit", b="Edit many tickets")["idea"]
    assert a["body"] == html
    alice.mutate(VOTE, i=b["id"])
    assert [e["node"]["id"] for e in alice.gql(IDEAS)["ideas"]["edges"]] == [b["id"], a["id"]]  # most voted first
    alice.mutate(STATUS, i=a["id"], s="DECLINED", n="Not planned")
    assert [e["node"]["id"] for e in carol.gql(IDEAS, f={"status": ["DECLINED"]})["ideas"]["edges"]] == [a["id"]]
    assert [e["node"]["id"] for e in carol.gql(IDEAS, f={"text": "bulk"})["ideas"]["edges"]] == [b["id"]]
    hits = user("dan", "customer").gql(SEARCH, q="bulk edit tickets", k=["IDEA"])["search"]
    assert [(h["kind"], h["id"]) for h in hits] == [("IDEA", b["id"])]
