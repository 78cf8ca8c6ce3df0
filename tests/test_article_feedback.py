"""Article feedback: who may file and resolve it, its lifecycle, the revision that resolved it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.harness import Client
from tests.test_articles import HISTORY, UPDATE, new_article, publish

ADD = """mutation($id: ID!, $kind: ArticleFeedbackKind!, $body: String!) {
  articleFeedbackAdd(input: {articleId: $id, kind: $kind, body: $body}) {
  errors { code message field } feedback { id kind body status revision resolvedRevision author { id } }
  article { id revision } } }"""
RESOLVE = """mutation($id: ID!, $status: ArticleFeedbackStatus!, $rev: Int, $note: String) {
  articleFeedbackResolve(input: {feedbackId: $id, status: $status, resolvedRevision: $rev, note: $note}) {
  errors { code message field } feedback { id status resolvedRevision note } article { id } } }"""
ON_ARTICLE = """query($id: ID!, $status: [ArticleFeedbackStatus!]) { article(id: $id) {
  feedback(status: $status) { id kind status author { id } } } }"""
QUEUE = """query($status: [ArticleFeedbackStatus!]) { articleFeedbackQueue(status: $status) {
  edges { node { id status article { id } } } } }"""

Users = Callable[..., Client]


def add(client: Client, article_id: str, kind: str = "GAP", body: str = "Missing macOS steps") -> dict[str, Any]:
    feedback: dict[str, Any] = client.mutate(ADD, id=article_id, kind=kind, body=body)["feedback"]
    return feedback


def test_feedback_lifecycle_links_the_resolving_revision(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    sam = user("sam", "agent")
    article_id = new_article(ann)["id"]
    item = add(sam, article_id, "OUTDATED", "Client 6 changed the menu")
    assert (item["status"], item["revision"], item["author"]) == ("OPEN", 1, {"id": "sam"})
    accepted = ann.mutate(RESOLVE, id=item["id"], status="ACCEPTED", note="Will fix")["feedback"]
    assert accepted["status"] == "ACCEPTED" and accepted["resolvedRevision"] is None
    ann.mutate(UPDATE, input={"articleId": article_id, "environment": "Client 6"})
    done = ann.mutate(RESOLVE, id=item["id"], status="DONE", note="Updated for client 6")["feedback"]
    assert done == {"id": item["id"], "status": "DONE", "resolvedRevision": 2, "note": "Updated for client 6"}
    # DONE is final; unknown ids and bad revisions are clear errors with nothing written
    again = ann.mutate_error(RESOLVE, id=item["id"], status="REJECTED")
    assert (again["code"], again["field"]) == ("INVALID", "status")
    assert ann.mutate_error(RESOLVE, id="afb_nope", status="DONE")["code"] == "NOT_FOUND"
    other = add(sam, article_id, "SUGGESTION", "Add a screenshot")
    bad_rev = ann.mutate_error(RESOLVE, id=other["id"], status="DONE", rev=1)  # filed at revision 2
    assert (bad_rev["code"], bad_rev["field"]) == ("INVALID", "resolvedRevision")
    not_done = ann.mutate_error(RESOLVE, id=other["id"], status="REJECTED", rev=2)
    assert not_done["field"] == "resolvedRevision"
    assert ann.mutate(RESOLVE, id=other["id"], status="REJECTED", note="Out of scope")["feedback"]["status"] == \
        "REJECTED"
    statuses = {f["id"]: f["status"] for f in ann.gql(ON_ARTICLE, id=article_id)["article"]["feedback"]}
    assert statuses == {item["id"]: "DONE", other["id"]: "REJECTED"}
    kinds = [e["node"]["kind"] for e in ann.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]]
    assert kinds.count("article.feedback_added") == 2 and kinds.count("article.feedback_resolved") == 3


def test_who_may_file_and_resolve_feedback(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    cand = user("cand", "agent", kcs="candidate")
    cora = user("cora", "agent", kcs="contributor")
    carol = user("carol", "customer")
    dan = user("dan", "customer")
    article_id = new_article(pete)["id"]
    # customers cannot see, hence not comment on, an unpublished article
    assert carol.mutate_error(ADD, id=article_id, kind="GAP", body="?")["code"] == "NOT_FOUND"
    publish(pete, article_id)
    mine = add(carol, article_id, "INACCURATE", "Step 3 is wrong")
    add(dan, article_id, "GAP", "What about Linux?")
    empty = carol.mutate_error(ADD, id=article_id, kind="GAP", body="  ")
    assert (empty["code"], empty["field"]) == ("INVALID", "body")
    # customers see only their own feedback; staff see all of it
    assert [f["author"]["id"] for f in carol.gql(ON_ARTICLE, id=article_id)["article"]["feedback"]] == ["carol"]
    assert len(cora.gql(ON_ARTICLE, id=article_id)["article"]["feedback"]) == 2
    # only those licensed to edit the (external) article resolve: not customers, candidates or contributors
    assert carol.mutate_error(RESOLVE, id=mine["id"], status="ACCEPTED")["code"] == "NOT_FOUND"
    for unlicensed in (cand, cora):
        assert unlicensed.mutate_error(RESOLVE, id=mine["id"], status="ACCEPTED")["code"] == "FORBIDDEN"
    assert pete.mutate(RESOLVE, id=mine["id"], status="ACCEPTED")["feedback"]["status"] == "ACCEPTED"
    # customers never see feedback events on the article stream
    kinds = [e["node"]["kind"] for e in carol.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]]
    assert "article.feedback_added" not in kinds and "article.feedback_resolved" not in kinds


def test_feedback_queues(user: Users) -> None:
    ann = user("ann", "agent", kcs="publisher")
    bob = user("bob", "agent", kcs="publisher")
    ed = user("ed", "editor")
    carol = user("carol", "customer")
    anns, bobs = new_article(ann, "Ann's")["id"], new_article(bob, "Bob's")["id"]
    publish(ann, anns)
    on_ann = add(carol, anns)
    on_bob = add(ann, bobs, "SUGGESTION", "Link the KB of the vendor")

    def queue(client: Client, status: list[str] | None = None) -> set[str]:
        edges = client.gql(QUEUE, status=status)["articleFeedbackQueue"]["edges"]
        return {e["node"]["id"] for e in edges}

    assert queue(ed) == {on_ann["id"], on_bob["id"]}  # the editor/coach sees everything
    assert queue(ann) == {on_ann["id"]}  # an owner sees feedback on their articles
    assert queue(bob) == {on_bob["id"]}
    assert queue(carol) == {on_ann["id"]}  # a customer sees their own
    ed.mutate(RESOLVE, id=on_bob["id"], status="REJECTED")
    assert queue(ed, ["OPEN"]) == {on_ann["id"]}
    assert queue(ed, ["REJECTED", "DONE"]) == {on_bob["id"]}


def test_feedback_tenant_isolation(user: Users) -> None:
    ann = user("ann", "agent", kcs="publisher")
    mallory = user("mallory", "editor", tenant_id="other-" + ann.tenant)
    article_id = new_article(ann)["id"]
    item = add(ann, article_id)
    assert mallory.mutate_error(ADD, id=article_id, kind="GAP", body="x")["code"] == "NOT_FOUND"
    assert mallory.mutate_error(RESOLVE, id=item["id"], status="DONE")["code"] == "NOT_FOUND"
    assert mallory.gql(QUEUE)["articleFeedbackQueue"]["edges"] == []
