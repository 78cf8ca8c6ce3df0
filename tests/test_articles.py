"""Knowledge articles: KCS licences, revisions and diffs, revert, conflicts, proposals, visibility, events."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors

FIELDS = """id title issue environment cause resolution tags product audience state revision score
  helpfulCount notHelpfulCount flagged owner { id } watchers { id } createdAt updatedAt viewCount useCount"""
CREATE = f"""mutation($input: ArticleCreateInput!) {{ articleCreate(input: $input) {{
  errors {{ code message field }} article {{ {FIELDS} }} }} }}"""
UPDATE = f"""mutation($input: ArticleUpdateInput!) {{ articleUpdate(input: $input) {{
  errors {{ code message field }} article {{ {FIELDS} }} }} }}"""
SET_STATE = """mutation($id: ID!, $state: ArticleState!) { articleSetState(input: {articleId: $id, state: $state}) {
  errors { code message field } article { id state audience revision } } }"""
REVERT = """mutation($id: ID!, $rev: Int!, $expected: Int) {
  articleRevert(input: {articleId: $id, revision: $rev, expectedRevision: $expected}) {
  errors { code message field } article { id title resolution tags revision } } }"""
PROPOSE = """mutation($input: ArticleEditProposeInput!) { articleEditPropose(input: $input) {
  errors { code message field } proposal { id status note baseRevision changes { field before after }
  proposer { id } } article { id revision } } }"""
DECIDE = """mutation($id: ID!, $accept: Boolean!, $note: String) {
  articleEditDecide(input: {id: $id, accept: $accept, note: $note}) {
  errors { code message field } proposal { id status appliedRevision decidedBy { id } decisionNote }
  article { id title revision } } }"""
FOLLOW = """mutation($id: ID!) { articleFollow(input: {articleId: $id}) {
  errors { code } article { watchers { id } } } }"""
UNFOLLOW = """mutation($id: ID!) { articleUnfollow(input: {articleId: $id}) {
  errors { code } article { watchers { id } } } }"""
VIEW = """mutation($id: ID!) { articleRecordView(input: {articleId: $id}) { errors { code } article { viewCount } } }"""
GET = f"query($id: ID!) {{ article(id: $id) {{ {FIELDS} }} }}"
REVISIONS = """query($id: ID!, $first: Int, $after: String) { article(id: $id) {
  revisions(first: $first, after: $after) { edges { cursor node { revision kind title resolution tags audience
  author { id } approvedBy { id } revertedTo
  changes { field before after } diff } } pageInfo { hasNextPage endCursor } } } }"""
LIST = """query($filter: ArticleFilter, $first: Int, $after: String) { articles(filter: $filter, first: $first,
  after: $after) { totalCount edges { cursor node { id title state audience score } }
  pageInfo { hasNextPage endCursor } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node {
  seq kind visibility summary data actor { id } } } } }"""
PROPOSALS = """query($filter: ArticleEditProposalFilter) { articleEditProposals(filter: $filter) {
  edges { node { id status article { id } } } } }"""

Users = Callable[..., Client]


def new_article(author: Client, title: str = "VPN drops every 10 minutes", **fields: Any) -> dict[str, Any]:
    body = {"title": title, "issue": "The VPN disconnects.", "environment": "Windows 11, client 5.2",
            "cause": "Idle timeout on the gateway.", "resolution": "Raise the idle timeout to 60 minutes.",
            "tags": ["VPN", "network"], "product": "Gateway", **fields}
    article: dict[str, Any] = author.mutate(CREATE, input=body)["article"]
    return article


def publish(publisher: Client, article_id: str) -> None:
    """Make an article customer-visible: EXTERNAL audience and VALIDATED."""
    revision = publisher.gql(GET, id=article_id)["article"]["revision"]
    publisher.mutate(UPDATE, input={"articleId": article_id, "audience": "EXTERNAL", "expectedRevision": revision})
    publisher.mutate(SET_STATE, id=article_id, state="VALIDATED")


def kinds(client: Client, article_id: str) -> list[str]:
    edges = client.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]
    return [e["node"]["kind"] for e in edges]


def test_create_gives_a_work_in_progress_first_revision(user: Users) -> None:
    ann = user("ann", "agent", kcs="candidate")
    article = new_article(ann)
    assert article["state"] == "WORK_IN_PROGRESS" and article["revision"] == 1
    assert article["audience"] == "INTERNAL" and article["tags"] == ["network", "vpn"]
    assert article["owner"] == {"id": "ann"} and article["watchers"] == [{"id": "ann"}]
    assert (article["score"], article["helpfulCount"], article["flagged"], article["viewCount"]) == (0, 0, False, 0)
    assert ann.gql(GET, id=article["id"])["article"] == article
    revs = ann.gql(REVISIONS, id=article["id"])["article"]["revisions"]["edges"]
    assert [e["node"]["kind"] for e in revs] == ["CREATED"]
    assert {c["field"] for c in revs[0]["node"]["changes"]} >= {"title", "resolution", "tags"}


@pytest.mark.parametrize("field,value", [
    ("title", "  "), ("title", "x" * 301), ("tags", [f"t{i}" for i in range(31)]), ("tags", ["x" * 51]),
    ("product", "p" * 101),
])
def test_create_rejects_bad_input(user: Users, field: str, value: Any) -> None:
    ann = user("ann", "agent", kcs="publisher")
    error = ann.mutate_error(CREATE, input={"title": "ok", field: value})
    assert (error["code"], error["field"]) == ("INVALID", field)
    assert ann.gql(LIST)["articles"]["totalCount"] == 0


def test_role_matrix_for_create(user: Users) -> None:
    # candidates and contributors create internal articles only; publishers may create external ones
    for sub, kcs in (("cand", "candidate"), ("cont", "contributor"), ("nokcs", None)):
        client = user(sub, "agent", **({"kcs": kcs} if kcs else {}))
        assert new_article(client)["audience"] == "INTERNAL"
        error = client.mutate_error(CREATE, input={"title": "Public", "audience": "EXTERNAL"})
        assert (error["code"], error["field"]) == ("FORBIDDEN", "audience")
    assert new_article(user("pub", "agent", kcs="publisher"), audience="EXTERNAL")["audience"] == "EXTERNAL"
    assert new_article(user("ed", "editor"), audience="EXTERNAL")["audience"] == "EXTERNAL"
    carol = user("carol", "customer")
    assert carol.mutate_error(CREATE, input={"title": "Mine"})["code"] == "FORBIDDEN"
    assert user("boss", "supervisor").gql(LIST)["articles"]["totalCount"] == 5


def test_role_matrix_for_update(user: Users) -> None:
    ann = user("ann", "agent", kcs="candidate")
    bob = user("bob", "agent", kcs="candidate")
    cora = user("cora", "agent", kcs="contributor")
    pete = user("pete", "agent", kcs="publisher")
    ed = user("ed", "editor")
    carol = user("carol", "customer")
    own = new_article(ann)["id"]

    def edit(client: Client, article_id: str, **fields: Any) -> dict[str, Any]:
        data = client.gql(UPDATE, input={"articleId": article_id, **fields})
        payload: dict[str, Any] = data["articleUpdate"]
        return payload

    # a candidate edits their own internal article, not someone else's
    assert edit(ann, own, title="Own edit")["article"]["revision"] == 2
    assert edit(bob, own, title="Not mine")["errors"][0]["code"] == "FORBIDDEN"
    # a contributor edits any internal article but cannot publish
    assert edit(cora, own, cause="Gateway idle timeout")["article"]["revision"] == 3
    assert edit(cora, own, audience="EXTERNAL")["errors"][0] == {
        "code": "FORBIDDEN", "field": "audience",
        "message": "Only KCS publishers may publish or edit external articles"}
    # a publisher publishes; afterwards only publishers and editors may edit it
    assert edit(pete, own, audience="EXTERNAL")["article"]["audience"] == "EXTERNAL"
    assert edit(ann, own, title="Owner, but external now")["errors"][0]["code"] == "FORBIDDEN"
    assert edit(cora, own, title="Contributor on external")["errors"][0]["code"] == "FORBIDDEN"
    assert edit(ed, own, title="Editor polish")["article"]["revision"] == 5
    # customers never edit, even what they can read
    pete.mutate(SET_STATE, id=own, state="VALIDATED")
    assert edit(carol, own, title="Customer")["errors"][0]["code"] == "FORBIDDEN"
    assert ann.gql(GET, id=own)["article"]["title"] == "Editor polish"


def test_role_matrix_for_set_state(user: Users) -> None:
    ann = user("ann", "agent", kcs="candidate")
    cora = user("cora", "agent", kcs="contributor")
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    article_id = new_article(ann)["id"]

    def set_state(client: Client, state: str) -> dict[str, Any]:
        payload: dict[str, Any] = client.gql(SET_STATE, id=article_id, state=state)["articleSetState"]
        return payload

    assert set_state(ann, "NOT_VALIDATED")["article"]["state"] == "NOT_VALIDATED"
    assert set_state(ann, "VALIDATED")["errors"][0] == {
        "code": "FORBIDDEN", "field": "state",
        "message": "Only KCS contributors may validate, archive or un-validate articles"}
    assert set_state(carol, "VALIDATED")["errors"][0]["code"] == "NOT_FOUND"  # cannot even see it
    assert set_state(cora, "VALIDATED")["article"]["state"] == "VALIDATED"
    assert set_state(ann, "WORK_IN_PROGRESS")["errors"][0]["code"] == "FORBIDDEN"  # cannot un-validate
    assert set_state(cora, "VALIDATED")["errors"][0]["code"] == "INVALID"  # already so
    pete.mutate(UPDATE, input={"articleId": article_id, "audience": "EXTERNAL"})
    assert set_state(cora, "ARCHIVED")["errors"][0]["code"] == "FORBIDDEN"  # external now
    assert set_state(pete, "ARCHIVED")["article"]["state"] == "ARCHIVED"
    assert kinds(pete, article_id).count("article.state_changed") == 3


def test_revisions_record_author_snapshot_and_diff(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    cora = user("cora", "agent", kcs="contributor")
    article = new_article(ann)
    updated = cora.mutate(UPDATE, input={
        "articleId": article["id"], "expectedRevision": 1, "resolution": "Raise the idle timeout.\nReconnect.",
        "tags": ["vpn"], "title": article["title"]})["article"]
    assert updated["revision"] == 2 and updated["tags"] == ["vpn"]
    edges = ann.gql(REVISIONS, id=article["id"])["article"]["revisions"]["edges"]
    newest = edges[0]["node"]
    assert [e["node"]["revision"] for e in edges] == [2, 1]
    assert newest["author"] == {"id": "cora"} and newest["kind"] == "EDITED"
    assert newest["changes"] == [
        {"field": "resolution", "before": "Raise the idle timeout to 60 minutes.",
         "after": "Raise the idle timeout.\nReconnect."},
        {"field": "tags", "before": ["network", "vpn"], "after": ["vpn"]},
    ]  # the unchanged title is no change
    assert "--- a/resolution" in newest["diff"] and "+Reconnect." in newest["diff"]
    assert "-network" in newest["diff"]
    assert newest["resolution"] == "Raise the idle timeout.\nReconnect."  # full snapshot
    # pagination over revisions
    page = ann.gql(REVISIONS, id=article["id"], first=1)["article"]["revisions"]
    assert page["pageInfo"]["hasNextPage"]
    rest = ann.gql(REVISIONS, id=article["id"], first=1, after=page["pageInfo"]["endCursor"])
    assert [e["node"]["revision"] for e in rest["article"]["revisions"]["edges"]] == [1]
    history = ann.gql(HISTORY, s=f"article:{article['id']}")["activity"]["edges"]
    revised = [e["node"] for e in history if e["node"]["kind"] == "article.revised"]
    assert revised[0]["data"] == {"revision": 2, "fields": ["resolution", "tags"]}
    assert revised[0]["actor"] == {"id": "cora"}


def test_stale_expected_revision_is_a_conflict_and_writes_nothing(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    cora = user("cora", "agent", kcs="contributor")
    article_id = new_article(ann)["id"]
    ann.mutate(UPDATE, input={"articleId": article_id, "expectedRevision": 1, "title": "First writer wins"})
    error = cora.mutate_error(UPDATE, input={"articleId": article_id, "expectedRevision": 1, "title": "Loser"})
    assert (error["code"], error["field"]) == ("CONFLICT", "expectedRevision")
    article = ann.gql(GET, id=article_id)["article"]
    assert (article["title"], article["revision"]) == ("First writer wins", 2)
    assert len(ann.gql(REVISIONS, id=article_id)["article"]["revisions"]["edges"]) == 2
    assert kinds(ann, article_id) == ["article.created", "article.revised"]
    # nothing-to-change and bad values are INVALID, also with nothing written
    same = ann.mutate_error(UPDATE, input={"articleId": article_id, "title": "First writer wins"})
    assert same["code"] == "INVALID"
    empty = ann.mutate_error(UPDATE, input={"articleId": article_id, "title": " "})
    assert (empty["code"], empty["field"]) == ("INVALID", "title")
    missing = ann.mutate_error(UPDATE, input={"articleId": "art_nope", "title": "x"})
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", "articleId")
    assert ann.gql(GET, id=article_id)["article"]["revision"] == 2


def test_concurrent_edits_from_one_revision_yield_one_winner(user: Users) -> None:
    editors = [user(f"e{i}", "agent", kcs="contributor") for i in range(5)]
    article_id = new_article(editors[0])["id"]

    def edit(client: Client) -> dict[str, Any]:
        payload: dict[str, Any] = client.gql(UPDATE, input={
            "articleId": article_id, "expectedRevision": 1, "title": f"Title by {client.sub}"})["articleUpdate"]
        return payload

    with ThreadPoolExecutor(len(editors)) as pool:
        results = list(pool.map(edit, editors))
    winners = [r["article"]["title"] for r in results if not r["errors"]]
    assert len(winners) == 1
    assert all(r["errors"][0]["code"] == "CONFLICT" for r in results if r["errors"])
    article = editors[0].gql(GET, id=article_id)["article"]
    assert (article["title"], article["revision"]) == (winners[0], 2)
    assert len(editors[0].gql(REVISIONS, id=article_id)["article"]["revisions"]["edges"]) == 2
    assert kinds(editors[0], article_id) == ["article.created", "article.revised"]


def test_revert_creates_a_new_revision_equal_to_the_old_one(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    article = new_article(ann)
    ann.mutate(UPDATE, input={"articleId": article["id"], "resolution": "Wrong fix", "tags": ["wrong"]})
    ann.mutate(UPDATE, input={"articleId": article["id"], "title": "Retitled"})
    stale = ann.mutate_error(REVERT, id=article["id"], rev=1, expected=2)
    assert stale["code"] == "CONFLICT"
    reverted = ann.mutate(REVERT, id=article["id"], rev=1, expected=3)["article"]
    assert reverted == {"id": article["id"], "title": article["title"], "resolution": article["resolution"],
                        "tags": article["tags"], "revision": 4}
    newest = ann.gql(REVISIONS, id=article["id"], first=1)["article"]["revisions"]["edges"][0]["node"]
    assert newest["kind"] == "REVERTED" and newest["revertedTo"] == 1
    assert {c["field"] for c in newest["changes"]} == {"title", "resolution", "tags"}
    assert ann.mutate_error(REVERT, id=article["id"], rev=1)["code"] == "INVALID"  # already equal
    assert ann.mutate_error(REVERT, id=article["id"], rev=9)["field"] == "revision"
    assert kinds(ann, article["id"])[-1] == "article.reverted"


def test_edit_proposals_are_decided_by_licensed_reviewers(user: Users) -> None:
    ann = user("ann", "agent", kcs="candidate")
    bob = user("bob", "agent", kcs="candidate")
    ed = user("ed", "editor")
    carol = user("carol", "customer")
    article = new_article(ann)
    # bob may not edit ann's article directly, so he proposes
    assert bob.mutate_error(UPDATE, input={"articleId": article["id"], "cause": "DNS"})["code"] == "FORBIDDEN"
    proposal = bob.mutate(PROPOSE, input={"articleId": article["id"], "cause": "Stale DNS cache",
                                          "note": "Seen on 12 cases"})["proposal"]
    assert proposal["status"] == "OPEN" and proposal["baseRevision"] == 1
    assert proposal["changes"] == [{"field": "cause", "before": "Idle timeout on the gateway.",
                                    "after": "Stale DNS cache"}]
    assert ann.gql(GET, id=article["id"])["article"]["revision"] == 1  # nothing applied yet
    assert carol.mutate_error(PROPOSE, input={"articleId": article["id"], "title": "x"})["code"] == "FORBIDDEN"
    # the review queue: editors see all; the proposer sees theirs; another candidate sees none
    assert [e["node"]["id"] for e in ed.gql(PROPOSALS)["articleEditProposals"]["edges"]] == [proposal["id"]]
    assert len(bob.gql(PROPOSALS)["articleEditProposals"]["edges"]) == 1
    assert user("zed", "agent").gql(PROPOSALS)["articleEditProposals"]["edges"] == []
    assert bob.mutate_error(DECIDE, id=proposal["id"], accept=True)["code"] == "FORBIDDEN"  # not his own
    decided = ed.mutate(DECIDE, id=proposal["id"], accept=True, note="Good catch")
    assert decided["proposal"] == {"id": proposal["id"], "status": "ACCEPTED", "appliedRevision": 2,
                                   "decidedBy": {"id": "ed"}, "decisionNote": "Good catch"}
    newest = ann.gql(REVISIONS, id=article["id"], first=1)["article"]["revisions"]["edges"][0]["node"]
    assert (newest["kind"], newest["author"], newest["approvedBy"]) == ("PROPOSAL", {"id": "bob"}, {"id": "ed"})
    assert ed.mutate_error(DECIDE, id=proposal["id"], accept=False)["code"] == "INVALID"  # already decided
    assert kinds(ed, article["id"])[-3:] == ["article.edit_proposed", "article.revised", "article.edit_decided"]


def test_proposal_rejection_and_stale_proposals(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    bob = user("bob", "agent", kcs="candidate")
    article = new_article(ann)
    first = bob.mutate(PROPOSE, input={"articleId": article["id"], "title": "Bob's title"})["proposal"]
    second = bob.mutate(PROPOSE, input={"articleId": article["id"], "resolution": "Reboot"})["proposal"]
    # the owner edits the title meanwhile: accepting the first proposal now is a conflict
    ann.mutate(UPDATE, input={"articleId": article["id"], "title": "Ann's title"})
    assert ann.mutate_error(DECIDE, id=first["id"], accept=True)["code"] == "CONFLICT"
    rejected = ann.mutate(DECIDE, id=first["id"], accept=False, note="Superseded")["proposal"]
    assert rejected["status"] == "REJECTED" and rejected["appliedRevision"] is None
    # a contributor may decide on any internal article; the untouched field applies cleanly
    applied = ann.mutate(DECIDE, id=second["id"], accept=True)
    assert applied["article"]["revision"] == 3
    # the proposer may withdraw (reject) their own proposal
    third = bob.mutate(PROPOSE, input={"articleId": article["id"], "product": "Client"})["proposal"]
    assert bob.mutate(DECIDE, id=third["id"], accept=False)["proposal"]["status"] == "REJECTED"
    open_only = ann.gql(PROPOSALS, filter={"articleId": article["id"], "status": ["OPEN"]})
    assert open_only["articleEditProposals"]["edges"] == []


def test_customers_see_only_published_articles_everywhere(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    draft = new_article(pete, "Draft fix")["id"]
    internal = new_article(pete, "Internal validated")["id"]
    pete.mutate(SET_STATE, id=internal, state="VALIDATED")
    external_draft = new_article(pete, "External not validated", audience="EXTERNAL")["id"]
    public = new_article(pete, "Published fix")["id"]
    publish(pete, public)
    # get, list, counts and streams
    for hidden in (draft, internal, external_draft):
        assert carol.gql(GET, id=hidden)["article"] is None
        with pytest.raises(GraphQLErrors) as hidden_stream:
            carol.gql(HISTORY, s=f"article:{hidden}")
        assert hidden_stream.value.codes == ["NOT_FOUND"]
        assert carol.mutate_error(
            """mutation($id: ID!) { articleRate(input: {articleId: $id, helpful: true}) { errors { code } } }""",
            id=hidden)["code"] == "NOT_FOUND"
    listed = carol.gql(LIST)["articles"]
    assert [e["node"]["id"] for e in listed["edges"]] == [public] and listed["totalCount"] == 1
    assert carol.gql(LIST, filter={"state": ["WORK_IN_PROGRESS"]})["articles"]["totalCount"] == 0
    assert carol.gql(LIST, filter={"audience": "INTERNAL"})["articles"]["edges"] == []
    assert carol.gql(LIST, filter={"text": "draft"})["articles"]["totalCount"] == 0
    assert pete.gql(LIST)["articles"]["totalCount"] == 4
    assert carol.gql(GET, id=public)["article"]["title"] == "Published fix"
    # customers see no revision history; archiving hides the article again
    assert carol.gql(REVISIONS, id=public)["article"]["revisions"]["edges"] == []
    pete.mutate(SET_STATE, id=public, state="ARCHIVED")
    assert carol.gql(GET, id=public)["article"] is None
    assert carol.gql(LIST)["articles"]["totalCount"] == 0


def test_article_events_are_filtered_by_audience(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    article_id = new_article(pete)["id"]
    publish(pete, article_id)
    pete.mutate(UPDATE, input={"articleId": article_id, "resolution": "Updated for customers"})
    carol.mutate("""mutation($id: ID!) { articleFeedbackAdd(input: {articleId: $id, kind: GAP, body: "macOS?"}) {
      errors { code } } }""", id=article_id)
    staff = pete.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]
    assert [(e["node"]["kind"], e["node"]["visibility"]) for e in staff] == [
        ("article.created", "INTERNAL"), ("article.revised", "INTERNAL"), ("article.state_changed", "PUBLIC"),
        ("article.revised", "PUBLIC"), ("article.feedback_added", "INTERNAL"),
    ]
    seen = carol.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]
    assert [e["node"]["kind"] for e in seen] == ["article.state_changed", "article.revised"]
    assert seen[0]["node"]["data"] == {"from": "WORK_IN_PROGRESS", "to": "VALIDATED", "revision": 2}
    assert seen[1]["node"]["data"] == {"revision": 3, "fields": ["resolution"]}


SUBSCRIBE = """subscription($id: ID!, $after: String) { articleActivity(articleId: $id, after: $after) {
  seq kind visibility data } }"""


def test_live_article_activity_respects_the_audience(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    draft = new_article(pete, "Draft")["id"]
    article_id = new_article(pete)["id"]
    publish(pete, article_id)
    last = carol.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"][-1]["node"]["seq"]
    cursor = pete.gql("""query($s: ID!) { activity(stream: $s) { pageInfo { endCursor } } }""",
                      s=f"article:{article_id}")["activity"]["pageInfo"]["endCursor"]
    with carol.subscribe(SUBSCRIBE, id=article_id, after=cursor) as theirs, \
            pete.subscribe(SUBSCRIBE, id=article_id, after=cursor) as ours:
        pete.mutate("""mutation($id: ID!) { articleRate(input: {articleId: $id, helpful: true}) {
          errors { code } } }""", id=article_id)
        pete.mutate(UPDATE, input={"articleId": article_id, "title": "VPN drops: raise the idle timeout"})
        staff = [e["articleActivity"] for e in ours.take(2)]
        assert [(e["kind"], e["visibility"]) for e in staff] == [
            ("article.rated", "INTERNAL"), ("article.revised", "PUBLIC")]
        seen = theirs.next()["articleActivity"]
        assert (seen["kind"], seen["seq"]) == ("article.revised", last + 2)
        assert seen["data"] == {"revision": 3, "fields": ["title"]}
        assert theirs.nothing()
    # a customer cannot subscribe to an article they cannot read
    with carol.subscribe(SUBSCRIBE, id=draft) as denied, pytest.raises(GraphQLErrors) as refused:
        denied.next()
    assert refused.value.codes == ["NOT_FOUND"]


def test_list_filters_and_pagination(user: Users) -> None:
    ann = user("ann", "agent", kcs="publisher")
    vpn = new_article(ann, "VPN timeout", tags=["vpn"], product="Gateway")["id"]
    printer = new_article(ann, "Printer offline", tags=["printing"], product="Printer",
                          resolution="Restart the spooler service.")["id"]
    ann.mutate(SET_STATE, id=printer, state="VALIDATED")
    other = user("bob", "agent", kcs="publisher")
    bobs = new_article(other, "Password reset link expired", tags=["account"], product="Portal")["id"]

    def ids(**filter: Any) -> set[str]:
        return {e["node"]["id"] for e in ann.gql(LIST, filter=filter)["articles"]["edges"]}

    assert ids(tag="VPN") == {vpn}
    assert ids(product="Printer") == {printer}
    assert ids(state="VALIDATED") == {printer}
    assert ids(ownerId="bob") == {bobs}
    assert ids(text="spooler restart") == {printer}
    assert ids(text="spooler password") == set()
    assert ids(flagged=False) == {vpn, printer, bobs}
    assert ids(audience="EXTERNAL") == set()
    # Relay pagination: most recently updated first among equal scores, no repeats
    first = ann.gql(LIST, first=2)["articles"]
    assert first["pageInfo"]["hasNextPage"] and first["totalCount"] == 3
    rest = ann.gql(LIST, first=2, after=first["pageInfo"]["endCursor"])["articles"]
    order = [e["node"]["id"] for e in first["edges"] + rest["edges"]]
    assert order == [bobs, printer, vpn] and not rest["pageInfo"]["hasNextPage"]
    bad = ann.raw(LIST, {"after": "garbage"})
    assert bad["errors"][0]["extensions"]["code"] == "INVALID"


def test_follow_unfollow_and_views(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    sam = user("sam", "agent")
    carol = user("carol", "customer")
    article_id = new_article(pete)["id"]
    assert sam.mutate(FOLLOW, id=article_id)["article"]["watchers"] == [{"id": "pete"}, {"id": "sam"}]
    assert sam.mutate(FOLLOW, id=article_id)["article"]["watchers"] == [{"id": "pete"}, {"id": "sam"}]
    assert carol.mutate_error(FOLLOW, id=article_id)["code"] == "NOT_FOUND"  # not published
    publish(pete, article_id)
    assert carol.mutate(FOLLOW, id=article_id)["article"]["watchers"] == [{"id": "carol"}]  # only herself
    assert sam.mutate(UNFOLLOW, id=article_id)["article"]["watchers"] == [{"id": "pete"}, {"id": "carol"}]
    assert kinds(pete, article_id).count("article.followed") == 2
    assert kinds(pete, article_id).count("article.unfollowed") == 1
    assert carol.mutate(VIEW, id=article_id)["article"]["viewCount"] == 1
    assert sam.mutate(VIEW, id=article_id)["article"]["viewCount"] == 2


def test_tenant_isolation(user: Users) -> None:
    mine = user("pete", "agent", kcs="publisher")
    theirs = user("mallory", "editor", tenant_id="other-" + mine.tenant)
    article_id = new_article(mine)["id"]
    publish(mine, article_id)
    assert theirs.gql(GET, id=article_id)["article"] is None
    assert theirs.gql(LIST)["articles"]["totalCount"] == 0
    assert theirs.mutate_error(UPDATE, input={"articleId": article_id, "title": "x"})["code"] == "NOT_FOUND"
    assert theirs.mutate_error(SET_STATE, id=article_id, state="ARCHIVED")["code"] == "NOT_FOUND"
    assert theirs.mutate_error(PROPOSE, input={"articleId": article_id, "title": "x"})["code"] == "NOT_FOUND"
    with pytest.raises(GraphQLErrors) as foreign_stream:
        theirs.gql(HISTORY, s=f"article:{article_id}")
    assert foreign_stream.value.codes == ["NOT_FOUND"]
    assert mine.gql(GET, id=article_id)["article"]["title"] == "VPN drops every 10 minutes"
