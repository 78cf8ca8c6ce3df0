"""Case ↔ article links and capture from a case, through the public API against the running hub."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.harness import Client

Users = Callable[..., Client]

CREATE_CASE = """mutation($s: String!, $d: String! = "") { caseCreate(input: {subject: $s, description: $d}) {
  errors { code message field } case { id } } }"""
UPDATE_CASE = """mutation($input: CaseUpdateInput!) { caseUpdate(input: $input) { errors { code message field }
  case { id version } } }"""
CREATE_ARTICLE = """mutation($input: ArticleCreateInput!) { articleCreate(input: $input) {
  errors { code message field } article { id revision } } }"""
UPDATE_ARTICLE = """mutation($input: ArticleUpdateInput!) { articleUpdate(input: $input) {
  errors { code message field } article { id revision } } }"""
SET_STATE = """mutation($id: ID!, $state: ArticleState!) { articleSetState(input: {articleId: $id, state: $state}) {
  errors { code message field } article { id state } } }"""
LINK = """mutation($c: ID!, $a: ID!, $r: CaseLinkRelation!) {
  caseLinkArticle(input: {caseId: $c, articleId: $a, relation: $r}) {
  errors { code message field } case { id version } article { id useCount } } }"""
UNLINK = """mutation($c: ID!, $a: ID!, $r: CaseArticleRelation!) {
  caseUnlinkArticle(input: {caseId: $c, articleId: $a, relation: $r}) {
  errors { code message field } case { id } article { id useCount } } }"""
CAPTURE = """mutation($c: ID!, $t: String) { articleCaptureFromCase(input: {caseId: $c, title: $t}) {
  errors { code message field } case { id }
  article { id title issue environment cause resolution tags audience state revision owner { id } useCount } } }"""
ADD_ITEM = """mutation($c: ID!, $k: WorkspaceItemKind!, $t: String!, $body: String!) {
  workspaceItemAdd(input: {caseId: $c, kind: $k, title: $t, content: $body}) { errors { code } item { id } } }"""
CASE_LINKS = """query($c: ID!) { case(id: $c) { linkedArticles { id title }
  articleLinks { relation reuse linkedBy { id } article { id } } } }"""
ARTICLE_CASES = """query($a: ID!) { article(id: $a) { id useCount linkedCases { id } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node {
  kind visibility data actor { id } } } } }"""


def events(client: Client, stream: str, prefix: str = "") -> list[dict[str, Any]]:
    edges = client.gql(HISTORY, s=stream)["activity"]["edges"]
    return [e["node"] for e in edges if e["node"]["kind"].startswith(prefix)]


def article(author: Client, title: str, **fields: Any) -> str:
    body = {"title": title, "issue": f"{title}: issue", "environment": "", "cause": "", "resolution": "Fix it.",
            **fields}
    article_id: str = author.mutate(CREATE_ARTICLE, input=body)["article"]["id"]
    return article_id


def publish(publisher: Client, article_id: str) -> None:
    publisher.mutate(UPDATE_ARTICLE, input={"articleId": article_id, "audience": "EXTERNAL"})
    publisher.mutate(SET_STATE, id=article_id, state="VALIDATED")


def test_link_counts_reuse_once_emits_on_both_streams_and_is_idempotent(user: Users) -> None:
    # given a published and an internal article, and a customer's case
    pat = user("pat", "agent", kcs="publisher")
    carol = user("carol", "customer")
    public_id, internal_id = article(pat, "VPN drops"), article(pat, "Gateway idle timeout internals")
    publish(pat, public_id)
    case_id = carol.mutate(CREATE_CASE, s="My VPN keeps dropping")["case"]["id"]
    version = pat.gql("query($c: ID!) { case(id: $c) { version } }", c=case_id)["case"]["version"]

    # when an agent links the published article as the solution, twice
    first = pat.mutate(LINK, c=case_id, a=public_id, r="SOLVED_BY")
    again = pat.mutate(LINK, c=case_id, a=public_id, r="SOLVED_BY")

    # then it is counted as one use, the case is not edited, and the second call changes nothing
    assert first["article"] == {"id": public_id, "useCount": 1} and first["case"] == {"id": case_id, "version": version}
    assert again["article"] == {"id": public_id, "useCount": 1}
    assert len(events(pat, f"case:{case_id}", "case.article_linked")) == 1
    # a second relation of the same pair is a new link but not a new use
    assert pat.mutate(LINK, c=case_id, a=public_id, r="REFERENCED")["article"]["useCount"] == 1
    assert pat.mutate(LINK, c=case_id, a=internal_id, r="REFERENCED")["article"]["useCount"] == 1

    linked = events(pat, f"case:{case_id}", "case.article_linked")
    assert [(e["data"]["articleId"], e["data"]["relation"], e["visibility"]) for e in linked] == [
        (public_id, "SOLVED_BY", "PUBLIC"), (public_id, "REFERENCED", "PUBLIC"),
        (internal_id, "REFERENCED", "INTERNAL"),
    ]
    on_article = events(pat, f"article:{public_id}", "article.linked_to_case")
    assert [(e["data"]["caseId"], e["data"]["relation"], e["visibility"], e["data"]["reuse"]) for e in on_article] == [
        (case_id, "SOLVED_BY", "INTERNAL", True), (case_id, "REFERENCED", "INTERNAL", True),
    ]
    assert on_article[0]["actor"] == {"id": "pat"}

    # the customer sees the solution link, never the internal article
    seen = events(carol, f"case:{case_id}", "case.article_linked")
    assert [(e["data"]["articleId"], e["visibility"]) for e in seen] == [(public_id, "PUBLIC"), (public_id, "PUBLIC")]
    assert carol.gql(CASE_LINKS, c=case_id)["case"] == {
        "linkedArticles": [{"id": public_id, "title": "VPN drops"}],
        "articleLinks": [{"relation": "SOLVED_BY", "reuse": None, "linkedBy": None, "article": {"id": public_id}},
                         {"relation": "REFERENCED", "reuse": None, "linkedBy": None, "article": {"id": public_id}}],
    }
    staff_view = pat.gql(CASE_LINKS, c=case_id)["case"]
    assert [a["id"] for a in staff_view["linkedArticles"]] == [public_id, internal_id]
    assert [(link["relation"], link["reuse"], link["linkedBy"]) for link in staff_view["articleLinks"]] == [
        ("SOLVED_BY", True, {"id": "pat"}), ("REFERENCED", True, {"id": "pat"}), ("REFERENCED", True, {"id": "pat"}),
    ]
    assert pat.gql(ARTICLE_CASES, a=public_id)["article"]["linkedCases"] == [{"id": case_id}]
    assert carol.gql(ARTICLE_CASES, a=public_id)["article"]["linkedCases"] == [{"id": case_id}]
    assert user("dave", "customer").gql(ARTICLE_CASES, a=public_id)["article"]["linkedCases"] == []


def test_unlink_uncounts_the_last_use(user: Users) -> None:
    pat, carol = user("pat", "agent", kcs="publisher"), user("carol", "customer")
    public_id = article(pat, "Printer offline")
    publish(pat, public_id)
    case_id = carol.mutate(CREATE_CASE, s="Printer")["case"]["id"]
    pat.mutate(LINK, c=case_id, a=public_id, r="SOLVED_BY")
    pat.mutate(LINK, c=case_id, a=public_id, r="REFERENCED")

    assert pat.mutate(UNLINK, c=case_id, a=public_id, r="REFERENCED")["article"]["useCount"] == 1
    assert pat.mutate(UNLINK, c=case_id, a=public_id, r="SOLVED_BY")["article"]["useCount"] == 0
    assert pat.mutate(UNLINK, c=case_id, a=public_id, r="SOLVED_BY")["article"]["useCount"] == 0  # absent: no-op

    unlinked = events(carol, f"case:{case_id}", "case.article_unlinked")
    assert [(e["data"]["relation"], e["visibility"]) for e in unlinked] == [("REFERENCED", "PUBLIC"),
                                                                            ("SOLVED_BY", "PUBLIC")]
    assert len(events(pat, f"article:{public_id}", "article.unlinked_from_case")) == 2
    assert carol.gql(CASE_LINKS, c=case_id)["case"]["linkedArticles"] == []


def test_link_access_and_bad_input(user: Users, tenant: str) -> None:
    pat, carol = user("pat", "agent", kcs="publisher"), user("carol", "customer")
    public_id = article(pat, "Reset password")
    publish(pat, public_id)
    case_id = carol.mutate(CREATE_CASE, s="Locked out")["case"]["id"]

    # customers never link, not even on their own case, and learn nothing about other cases
    refused = carol.mutate_error(LINK, c=case_id, a=public_id, r="SOLVED_BY")
    assert (refused["code"], refused["field"]) == ("FORBIDDEN", "caseId")
    assert carol.mutate_error(UNLINK, c=case_id, a=public_id, r="SOLVED_BY")["code"] == "FORBIDDEN"
    # bad ids
    missing = pat.mutate_error(LINK, c=case_id, a="art_000000000000000000000000", r="SOLVED_BY")
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", "articleId")
    malformed = pat.mutate_error(LINK, c="nope", a=public_id, r="SOLVED_BY")
    assert (malformed["code"], malformed["field"]) == ("INVALID", "caseId")
    # another tenant's staff sees neither the case nor the article
    stranger = user("pat", "agent", tenant_id=f"{tenant}x", kcs="publisher")
    assert stranger.mutate_error(LINK, c=case_id, a=public_id, r="SOLVED_BY")["code"] == "NOT_FOUND"
    own_case = stranger.mutate(CREATE_CASE, s="Theirs")["case"]["id"]
    assert stranger.mutate_error(LINK, c=own_case, a=public_id, r="SOLVED_BY")["field"] == "articleId"
    # nothing was written
    assert pat.gql(ARTICLE_CASES, a=public_id)["article"] == {"id": public_id, "useCount": 0, "linkedCases": []}
    assert events(pat, f"case:{case_id}", "case.article") == []


def test_concurrent_identical_links_make_one_link(user: Users) -> None:
    pat = user("pat", "agent", kcs="publisher")
    article_id = article(pat, "Disk full")
    case_id = pat.mutate(CREATE_CASE, s="Disk")["case"]["id"]
    agents = [user(f"agent{i}", "agent") for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: a.mutate(LINK, c=case_id, a=article_id, r="SOLVED_BY"), agents))
    assert all(r["article"]["id"] == article_id for r in results)
    assert pat.gql(ARTICLE_CASES, a=article_id)["article"]["useCount"] == 1
    assert len(events(pat, f"case:{case_id}", "case.article_linked")) == 1


def test_capture_prefills_from_the_case_and_workspace_and_links_back(user: Users) -> None:
    # given a worked case: KCS fields, labels and a workspace with steps, results and a document
    ann, carol = user("ann", "agent", kcs="candidate"), user("carol", "customer")
    case_id = carol.mutate(CREATE_CASE, s="Outlook crashes on start", d="Since this morning it crashes")["case"]["id"]
    ann.mutate(UPDATE_CASE, input={"caseId": case_id, "symptom": "Outlook 16 crashes at splash screen",
                                   "cause": "Corrupt add-in cache", "resolution": "Cleared the add-in cache.",
                                   "tags": ["outlook", "crash"], "skills": ["office"]})
    ann.mutate(ADD_ITEM, c=case_id, k="STEP", t="Start in safe mode", body="outlook.exe /safe")
    ann.mutate(ADD_ITEM, c=case_id, k="DOCUMENT", t="Crash dump", body="0xc0000005 ...")
    ann.mutate(ADD_ITEM, c=case_id, k="RESULT", t="Starts fine without add-ins", body="")

    # when a KCS candidate captures an article from it
    captured = ann.mutate(CAPTURE, c=case_id)
    got = captured["article"]

    # then the article is prefilled with no retyping, WIP and internal, owned by the candidate
    assert captured["case"] == {"id": case_id}
    assert (got["title"], got["issue"], got["cause"]) == (
        "Outlook crashes on start", "Outlook 16 crashes at splash screen", "Corrupt add-in cache")
    assert got["environment"] == "Channel: WEB\nTags: crash, outlook\nSkills: office"
    assert got["resolution"] == (
        "Cleared the add-in cache.\n\nSteps and results from the case workspace:\n\n"
        "1. [STEP] Start in safe mode\noutlook.exe /safe\n\n2. [RESULT] Starts fine without add-ins")
    assert (got["tags"], got["audience"], got["state"], got["revision"]) == (["crash", "outlook"], "INTERNAL",
                                                                             "WORK_IN_PROGRESS", 1)
    assert got["owner"] == {"id": "ann"} and got["useCount"] == 0

    # linked back (CAPTURED, not a reuse), with events on both streams
    links = ann.gql(CASE_LINKS, c=case_id)["case"]["articleLinks"]
    assert links == [{"relation": "CAPTURED", "reuse": False, "linkedBy": {"id": "ann"}, "article": {"id": got["id"]}}]
    (captured_event,) = events(ann, f"case:{case_id}", "case.article_captured")
    assert captured_event["visibility"] == "INTERNAL" and captured_event["data"]["articleId"] == got["id"]
    (created,) = events(ann, f"article:{got['id']}", "article.created")
    assert created["data"]["provenance"] == {"source": "CASE", "caseId": case_id}
    # the customer sees neither the internal article nor the capture
    assert carol.gql(CASE_LINKS, c=case_id)["case"] == {"linkedArticles": [], "articleLinks": []}
    assert events(carol, f"case:{case_id}", "case.article") == []
    # the candidate may go on editing their own captured article (KCS rules of articles)
    ann.mutate(UPDATE_ARTICLE, input={"articleId": got["id"], "environment": "Windows 11", "expectedRevision": 1})


def test_capture_title_override_access_and_bad_input(user: Users) -> None:
    ann, carol = user("ann", "agent"), user("carol", "customer")
    case_id = carol.mutate(CREATE_CASE, s="Slow laptop", d="Very slow")["case"]["id"]

    got = ann.mutate(CAPTURE, c=case_id, t="Laptop slow after update")["article"]
    assert (got["title"], got["issue"], got["resolution"]) == ("Laptop slow after update", "Very slow", "")

    refused = carol.mutate_error(CAPTURE, c=case_id)
    assert (refused["code"], refused["field"]) == ("FORBIDDEN", "caseId")
    blank = ann.mutate_error(CAPTURE, c=case_id, t="   ")
    assert (blank["code"], blank["field"]) == ("INVALID", "title")
    missing = ann.mutate_error(CAPTURE, c="case_000000000000000000000000")
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", "caseId")
    assert len(ann.gql(CASE_LINKS, c=case_id)["case"]["articleLinks"]) == 1
