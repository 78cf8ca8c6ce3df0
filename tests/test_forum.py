"""The forum pipeline through the public API: Receive → Consult → Create → Respond → Distribute,
anonymous front-ends (X-Hub-Tenant), rate limits, drafts never leaking, tenant isolation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.harness import Client, HubProcess

ERR = "errors { code message field }"
THREAD_FIELDS = """id title body status tags caseId answerCount createdAt author { id name }
  answers { id body accepted fromDraft author { id } contributors { id } createdAt }
  acceptedAnswer { id } promotedArticle { id } draft { id body version contributors { id } }
  suggestedExperts { id }"""
POST = f"""mutation($title: String!, $body: String!, $tags: [String!], $email: String, $name: String) {{
  forumQuestionPost(input: {{title: $title, body: $body, tags: $tags, email: $email, name: $name}}) {{ {ERR}
    thread {{ {THREAD_FIELDS} }} case {{ id channel status subject }} receipt {{ receivedAt reference threadId }}
  }} }}"""
ANON_POST = f"""mutation($title: String!, $body: String!, $email: String, $name: String) {{
  forumQuestionPost(input: {{title: $title, body: $body, email: $email, name: $name}}) {{ {ERR}
    thread {{ id title body status caseId author {{ id name }} }} case {{ id channel status }}
    receipt {{ receivedAt reference threadId }} }} }}"""
DRAFT = f"""mutation($t: ID!, $b: String!, $v: Int) {{ forumDraftSave(input: {{threadId: $t, body: $b,
  expectedVersion: $v}}) {{ {ERR} draft {{ id body version contributors {{ id }} }} }} }}"""
ANSWER = f"""mutation($t: ID!, $b: String, $d: Boolean! = false) {{ forumAnswerPost(input: {{threadId: $t,
  body: $b, fromDraft: $d}}) {{ {ERR} answer {{ id body fromDraft byStaff contributors {{ id }} author {{ id }} }}
  thread {{ status answerCount draft {{ id }} }} }} }}"""
ACCEPT = f"""mutation($a: ID!) {{ forumAnswerAccept(input: {{answerId: $a}}) {{ {ERR}
  answer {{ id accepted }} thread {{ status acceptedAnswer {{ id }} }} }} }}"""
PROMOTE = f"""mutation($a: ID!, $force: Boolean! = false, $aud: ArticleAudience) {{
  forumAnswerPromote(input: {{answerId: $a, force: $force, audience: $aud}}) {{ {ERR}
    article {{ id title issue resolution tags state audience provenance }} thread {{ promotedArticle {{ id }} }}
  }} }}"""
THREAD = f"query($id: ID!) {{ forumThread(id: $id) {{ {THREAD_FIELDS} }} }}"
PUBLIC_THREAD = """query($id: ID!) { forumThread(id: $id) { id title body status caseId answerCount
  answers { id body accepted author { id } contributors { id } } acceptedAnswer { id body }
  promotedArticle { id } draft { id body } suggestedExperts { id } author { id name } } }"""
THREADS = """query($f: ForumFilter, $first: Int) { forumThreads(filter: $f, first: $first) {
  edges { node { id title body caseId draft { body } answers { body } } } pageInfo { hasNextPage } } }"""
CASE = "query($id: ID!) { case(id: $id) { id status channel solvedAt customer { id } } }"
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node { kind visibility data
  actor { id } } } } }"""
COMMENT = f"""mutation($s: ID!, $b: String!, $v: Visibility!) {{ commentAdd(input: {{subjectId: $s, body: $b,
  visibility: $v}}) {{ {ERR} comment {{ id }} }} }}"""
COMMENTS = "query($s: ID!) { thread(id: $s) { comments { totalCount edges { node { body visibility } } } } }"
INBOX = "{ notifications(first: 50) { edges { node { kind subjectId subjectKind summary } } } }"
SEARCH = """query($q: String!, $k: [SearchKind!]) { search(query: $q, kinds: $k) { kind id title snippet } }"""
ARTICLE = """mutation($t: String!, $i: String!) { articleCreate(input: {title: $t, issue: $i, resolution: "x"}) {
  errors { code message } article { id } } }"""


class Anonymous:
    """A forum front-end without a token, naming its tenant in X-Hub-Tenant."""

    def __init__(self, hub: HubProcess, tenant: str | None) -> None:
        headers = {"X-Hub-Tenant": tenant} if tenant else {}
        self.http = httpx.Client(base_url=hub.url, timeout=30, headers=headers)

    def raw(self, query: str, **variables: Any) -> httpx.Response:
        return self.http.post("/graphql", json={"query": query, "variables": variables})

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self.raw(query, **variables).json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def payload(self, query: str, **variables: Any) -> dict[str, Any]:
        (result,) = self.gql(query, **variables).values()
        out: dict[str, Any] = result
        return out


def ask(client: Client, title: str = "Invoice shows the wrong VAT", body: str = "Since May the VAT is 0%.",
        tags: list[str] | None = None) -> dict[str, Any]:
    return client.mutate(POST, title=title, body=body, tags=tags or ["billing"])


def kinds(client: Client, stream: str) -> list[str]:
    return [e["node"]["kind"] for e in client.gql(HISTORY, s=stream)["activity"]["edges"]]


def test_receive_consult_create_respond_distribute(user: Callable[..., Client]) -> None:
    # given a customer, two staff with skills, a staff member without, and a KCS publisher
    carol = user("carol", "customer")
    alice = user("alice", "agent", skills=["billing", "vat"])
    bob = user("bob", "expert", skills=["Billing"])
    dave = user("dave", "agent", skills=["networking"])
    ed = user("ed", "agent", kcs="publisher")
    for staff in (alice, bob, dave):
        staff.gql("{ viewer { id } }")

    # Receive: the question creates a public thread and a FORUM case, acknowledged at once
    posted = ask(carol, body="Since May the VAT on my invoice is 0%. Billing says it is fine.",
                 tags=["billing", "vat"])
    thread, case, receipt = posted["thread"], posted["case"], posted["receipt"]
    assert thread["status"] == "OPEN" and thread["caseId"] == case["id"]
    assert case["channel"] == "FORUM" and case["status"] == "NEW"
    assert receipt["reference"] == case["id"] and receipt["threadId"] == thread["id"] and receipt["receivedAt"]
    assert alice.gql(CASE, id=case["id"])["case"]["customer"] == {"id": "carol"}
    assert kinds(carol, f"forum:{thread['id']}") == ["forum.question_posted"]
    assert kinds(carol, f"case:{case['id']}") == ["case.created"]

    # Consult: staff see the case, experts ranked by skill overlap, and discuss internally
    seen = alice.gql(THREAD, id=thread["id"])["forumThread"]
    assert seen["caseId"] == case["id"]
    assert [u["id"] for u in seen["suggestedExperts"]] == ["alice", "bob"]  # 2 matches, then 1
    alice.mutate(COMMENT, s=thread["id"], b="Looks like the May tax table", v="INTERNAL")
    alice.mutate(COMMENT, s=case["id"], b="@bob can you check?", v="INTERNAL")

    # Create: staff co-edit a versioned draft; a stale save is refused
    assert alice.mutate(DRAFT, t=thread["id"], b="Re-run the tax table", v=0)["draft"]["version"] == 1
    saved = bob.mutate(DRAFT, t=thread["id"], b="Re-run the May tax table import.", v=1)["draft"]
    assert saved["version"] == 2 and {u["id"] for u in saved["contributors"]} == {"alice", "bob"}
    stale = alice.mutate_error(DRAFT, t=thread["id"], b="mine", v=1)
    assert stale["code"] == "CONFLICT" and stale["field"] == "expectedVersion"

    # Respond: the draft is published as an answer, the asker is notified, accepts, the case is solved
    answer = alice.mutate(ANSWER, t=thread["id"], d=True)
    assert answer["answer"]["body"] == "Re-run the May tax table import." and answer["answer"]["fromDraft"]
    assert {u["id"] for u in answer["answer"]["contributors"]} == {"alice", "bob"}
    assert answer["thread"] == {"status": "ANSWERED", "answerCount": 1, "draft": None}
    notes = [n["node"] for n in carol.gql(INBOX)["notifications"]["edges"]]
    assert any(n["subjectId"] == thread["id"] and n["kind"] == "forum.answer_posted" for n in notes)
    accepted = carol.mutate(ACCEPT, a=answer["answer"]["id"])
    assert accepted["answer"]["accepted"] and accepted["thread"]["status"] == "RESOLVED"
    assert carol.gql(CASE, id=case["id"])["case"]["status"] == "SOLVED"
    assert "case.status_changed" in kinds(carol, f"case:{case['id']}")
    alice_notes = [n["node"] for n in alice.gql(INBOX)["notifications"]["edges"]]
    assert any(n["kind"] == "forum.answer_accepted" for n in alice_notes)

    # Distribute: the accepted answer becomes an article with provenance, linked from the thread
    promoted = ed.mutate(PROMOTE, a=answer["answer"]["id"])
    article = promoted["article"]
    assert promoted["thread"]["promotedArticle"] == {"id": article["id"]}
    assert article["title"] == thread["title"] and article["resolution"] == "Re-run the May tax table import."
    assert article["state"] == "WORK_IN_PROGRESS" and article["tags"] == ["billing", "vat"]
    provenance = article["provenance"]
    assert provenance["source"] == "FORUM" and provenance["threadId"] == thread["id"]
    assert provenance["answerId"] == answer["answer"]["id"] and provenance["caseId"] == case["id"]
    assert provenance["question"]["askerId"] == "carol" and provenance["contributors"] == ["alice", "bob"]
    again = ed.mutate_error(PROMOTE, a=answer["answer"]["id"], force=True)
    assert again["code"] == "CONFLICT" and article["id"] in again["message"]
    # the customer does not see the unpublished article, nor the promotion event
    assert carol.gql(THREAD, id=thread["id"])["forumThread"]["promotedArticle"] is None
    assert kinds(carol, f"forum:{thread['id']}") == [
        "forum.question_posted", "forum.answer_posted", "forum.answer_accepted"]
    assert kinds(alice, f"forum:{thread['id']}") == [
        "forum.question_posted", "comment.added", "forum.draft_saved", "forum.draft_saved", "forum.answer_posted",
        "forum.answer_accepted", "forum.answer_promoted"]


def test_anonymous_question_with_email_and_rate_limits(
    hub: HubProcess, tenant: str, user: Callable[..., Client]
) -> None:
    # given an anonymous front-end of the tenant
    anon = Anonymous(hub, tenant)
    alice = user("alice", "agent")
    # when a guest posts with an e-mail
    posted = anon.payload(ANON_POST, title="Can't log in", body="Reset link expired", email="Gus@Example.com",
                          name="Gus")
    assert posted["errors"] == []
    thread, case = posted["thread"], posted["case"]
    # then the guest gets the receipt, a FORUM case for a stable guest id, and sees their case id now
    assert posted["receipt"]["reference"] == case["id"] and case["channel"] == "FORUM"
    assert thread["caseId"] == case["id"] and thread["author"]["name"] == "Gus"
    guest = thread["author"]["id"]
    assert guest.startswith("anon_")
    assert alice.gql(CASE, id=case["id"])["case"]["customer"] == {"id": guest}
    again = anon.payload(ANON_POST, title="Still can't log in", body="...", email="gus@example.com ")
    assert again["thread"]["author"]["id"] == guest  # same e-mail, same guest
    # but later anonymous reads never show the case
    assert anon.gql(PUBLIC_THREAD, id=thread["id"])["forumThread"]["caseId"] is None

    # bad input: clear errors, nothing written
    for variables, field in (({"email": "not-an-email"}, "email"), ({}, "email"),
                             ({"email": "a@b.co", "title": "  "}, "title")):
        payload = anon.payload(ANON_POST, **{"title": "Help", "body": "b", **variables})
        assert payload["errors"][0]["code"] == "INVALID" and payload["errors"][0]["field"] == field
        assert payload["thread"] is None
    # without a token or a tenant hint: 401
    nobody = Anonymous(hub, None)
    assert nobody.raw(ANON_POST, title="t", body="b", email="a@b.co").status_code == 401
    assert nobody.raw(THREADS).status_code == 401

    # spam bursts: the guest's IP may post 5 questions a minute (2 done), the 6th is refused
    for n in range(3):
        assert anon.payload(ANON_POST, title=f"Spam {n}", body="buy", email=f"s{n}@spam.io")["errors"] == []
    refused = anon.payload(ANON_POST, title="Spam 4", body="buy", email="s9@spam.io")
    assert refused["errors"][0]["code"] == "RATE_LIMITED" and refused["thread"] is None
    titles = [e["node"]["title"] for e in alice.gql(THREADS, first=50)["forumThreads"]["edges"]]
    assert len(titles) == 5 and "Spam 4" not in titles


def test_signed_in_customers_are_limited_per_user(user: Callable[..., Client]) -> None:
    carol, dan = user("carol", "customer"), user("dan", "customer")
    for n in range(5):
        ask(carol, title=f"Question {n}")
    error = carol.mutate_error(POST, title="Question 6", body="b")
    assert error["code"] == "RATE_LIMITED"
    ask(dan, title="Another customer is not limited by carol")
    staff = user("alice", "agent").mutate_error(POST, title="Staff do not ask", body="b")
    assert staff["code"] == "FORBIDDEN"


def test_drafts_and_internal_notes_never_reach_customers_or_anonymous_readers(
    hub: HubProcess, tenant: str, user: Callable[..., Client]
) -> None:
    # given a question with a draft answer and internal notes
    carol, dan, alice = user("carol", "customer"), user("dan", "customer"), user("alice", "agent")
    thread = ask(carol)["thread"]
    secret = "SECRET-DRAFT-tax-table-bug"
    alice.mutate(DRAFT, t=thread["id"], b=secret)
    alice.mutate(COMMENT, s=thread["id"], b="INTERNAL-NOTE-escalate", v="INTERNAL")
    anon = Anonymous(hub, tenant)
    # then nothing of it reaches the asker, another customer or an anonymous reader, in any field
    for client in (carol, dan):
        responses = [client.gql(THREAD, id=thread["id"]), client.gql(THREADS),
                     client.gql(HISTORY, s=f"forum:{thread['id']}"), client.gql(COMMENTS, s=thread["id"]),
                     client.gql(INBOX)]
        text = json.dumps(responses)
        assert secret not in text and "INTERNAL-NOTE" not in text and "draft_saved" not in text
        assert responses[0]["forumThread"]["draft"] is None
        assert responses[0]["forumThread"]["suggestedExperts"] == []
    text = json.dumps([anon.gql(PUBLIC_THREAD, id=thread["id"]), anon.gql(THREADS)])
    assert secret not in text and thread["caseId"] not in text
    # drafts and notes are not searchable, the question and its answers are, by every customer
    assert carol.gql(SEARCH, q="SECRET-DRAFT-tax-table-bug")["search"] == []
    assert alice.gql(SEARCH, q="escalate", k=["FORUM_THREAD"])["search"] == []
    alice.mutate(ANSWER, t=thread["id"], b="Reimport the quarterly spreadsheet")
    hits = dan.gql(SEARCH, q="quarterly spreadsheet", k=["FORUM_THREAD"])["search"]
    assert [(h["kind"], h["id"]) for h in hits] == [("FORUM_THREAD", thread["id"])]
    assert secret not in json.dumps(hits)
    # customers cannot write drafts or internal notes on questions
    assert carol.mutate_error(DRAFT, t=thread["id"], b="x")["code"] == "FORBIDDEN"
    assert carol.mutate_error(COMMENT, s=thread["id"], b="x", v="PUBLIC")["code"] == "FORBIDDEN"
    # and staff still see the draft, the case and the note
    staff_view = alice.gql(THREAD, id=thread["id"])["forumThread"]
    assert staff_view["draft"]["body"] == secret and staff_view["caseId"] == thread["caseId"]
    assert alice.gql(COMMENTS, s=thread["id"])["thread"]["comments"]["totalCount"] == 1


def test_community_answers_and_who_may_accept(user: Callable[..., Client]) -> None:
    carol, dan, alice = user("carol", "customer"), user("dan", "customer"), user("alice", "agent")
    thread = ask(carol)["thread"]
    # a customer answers someone else's question (community); only the asker or staff accept
    community = dan.mutate(ANSWER, t=thread["id"], b="Clear your cache")["answer"]
    assert not community["byStaff"] and community["author"] == {"id": "dan"}
    assert dan.mutate_error(ACCEPT, a=community["id"])["code"] == "FORBIDDEN"
    staff_answer = alice.mutate(ANSWER, t=thread["id"], b="Use the May table")["answer"]
    assert carol.mutate(ACCEPT, a=staff_answer["id"])["thread"]["acceptedAnswer"] == {"id": staff_answer["id"]}
    assert carol.mutate(ACCEPT, a=staff_answer["id"])["answer"]["accepted"]  # again: nothing changes
    other = carol.mutate_error(ACCEPT, a=community["id"])
    assert other["code"] == "CONFLICT" and staff_answer["id"] in other["message"]
    assert carol.mutate_error(ANSWER, t=thread["id"], d=True)["code"] == "FORBIDDEN"
    assert alice.mutate_error(ANSWER, t=thread["id"], d=True)["field"] == "fromDraft"  # no draft
    assert alice.mutate_error(ANSWER, t=thread["id"], b=" ")["field"] == "body"
    assert alice.mutate_error(ACCEPT, a="fans_000000000000000000000000")["code"] == "NOT_FOUND"
    # the answer author is told their answer was accepted
    kinds_seen = [n["node"]["kind"] for n in alice.gql(INBOX)["notifications"]["edges"]]
    assert "forum.answer_accepted" in kinds_seen


def test_staff_accept_for_an_anonymous_asker_and_the_case_resolves(
    hub: HubProcess, tenant: str, user: Callable[..., Client]
) -> None:
    anon = Anonymous(hub, tenant)
    alice = user("alice", "agent")
    posted = anon.payload(ANON_POST, title="Router blinks red", body="All night", email="r@example.org")
    answer = alice.mutate(ANSWER, t=posted["thread"]["id"], b="Replace the PSU")["answer"]
    alice.mutate(ACCEPT, a=answer["id"])
    case = alice.gql(CASE, id=posted["case"]["id"])["case"]
    assert case["status"] == "SOLVED" and case["solvedAt"]
    public = anon.gql(PUBLIC_THREAD, id=posted["thread"]["id"])["forumThread"]
    assert public["status"] == "RESOLVED" and public["acceptedAnswer"]["body"] == "Replace the PSU"
    assert public["answers"][0]["contributors"] == []  # staff detail


def test_promotion_checks_licence_acceptance_and_duplicates(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent", kcs="contributor")
    existing = alice.mutate(ARTICLE, t="Reset the VPN client certificate", i="VPN fails after renewal")["article"]
    thread = ask(carol, title="How do I reset the VPN client certificate?", body="It fails after renewal",
                 tags=["vpn"])["thread"]
    answer = alice.mutate(ANSWER, t=thread["id"], b="Delete the old cert, then re-enrol")["answer"]
    assert alice.mutate_error(PROMOTE, a=answer["id"])["code"] == "INVALID"  # not accepted yet
    carol.mutate(ACCEPT, a=answer["id"])
    assert carol.mutate_error(PROMOTE, a=answer["id"])["code"] == "FORBIDDEN"
    assert alice.mutate_error(PROMOTE, a=answer["id"], aud="EXTERNAL")["code"] == "FORBIDDEN"  # publishers only
    duplicate = alice.mutate_error(PROMOTE, a=answer["id"])
    assert duplicate["code"] == "CONFLICT" and existing["id"] in duplicate["message"]
    assert alice.gql(THREAD, id=thread["id"])["forumThread"]["promotedArticle"] is None  # nothing half-written
    forced = alice.mutate(PROMOTE, a=answer["id"], force=True)["article"]
    assert forced["id"] != existing["id"] and forced["provenance"]["answer"]["authorId"] == "alice"


def test_html_is_stored_and_returned_verbatim(hub: HubProcess, tenant: str, user: Callable[..., Client]) -> None:
    carol = user("carol", "customer")
    body = '<script>alert("x")</script>\n<b onclick=evil()>bold</b> &amp; '
    thread = ask(carol, title="<img src=x onerror=alert(1)>", body=body)["thread"]
    assert thread["body"] == body and thread["title"] == "<img src=x onerror=alert(1)>"
    public = Anonymous(hub, tenant).gql(PUBLIC_THREAD, id=thread["id"])["forumThread"]
    assert public["body"] == body


def test_tenant_hint_reads_only_that_tenants_public_forum(
    hub: HubProcess, tenant: str, user: Callable[..., Client]
) -> None:
    # given a question in this tenant and one in another
    carol = user("carol", "customer")
    mine = ask(carol, title="Ours")["thread"]
    other_tenant = tenant + "x"
    theirs = ask(user("zoe", "customer", tenant_id=other_tenant), title="Theirs")["thread"]
    # an anonymous reader of this tenant sees only this tenant's thread
    anon = Anonymous(hub, tenant)
    assert [e["node"]["id"] for e in anon.gql(THREADS)["forumThreads"]["edges"]] == [mine["id"]]
    assert anon.gql(PUBLIC_THREAD, id=theirs["id"])["forumThread"] is None
    # a token's tenant wins over the header
    assert Anonymous(hub, other_tenant).gql(PUBLIC_THREAD, id=mine["id"])["forumThread"] is None
    carol.http.headers["X-Hub-Tenant"] = other_tenant
    assert carol.gql(PUBLIC_THREAD, id=theirs["id"])["forumThread"] is None
    assert carol.gql(PUBLIC_THREAD, id=mine["id"])["forumThread"]["caseId"] == mine["caseId"]
    # anonymous readers cannot use other domains with the header
    assert anon.raw("{ cases { edges { node { id } } } }").status_code == 401
    assert anon.raw(HISTORY, s=f"forum:{mine['id']}").status_code == 401
    # filters
    assert anon.gql(THREADS, f={"text": "ours"})["forumThreads"]["edges"][0]["node"]["id"] == mine["id"]
    assert anon.gql(THREADS, f={"status": ["RESOLVED"]})["forumThreads"]["edges"] == []
    assert anon.raw(THREADS, f={"mine": True}).json()["errors"][0]["extensions"]["code"] == "INVALID"
