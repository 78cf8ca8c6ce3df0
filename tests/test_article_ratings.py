"""Article ratings: one changeable vote per user, Wilson score, promotion in lists, flag-it-or-fix-it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from resolvers.articles.ratings import FLAG_BELOW, MIN_VOTES, wilson
from tests.harness import Client
from tests.test_articles import HISTORY, LIST, SET_STATE, UPDATE, new_article, publish

RATE = """mutation($id: ID!, $helpful: Boolean!, $comment: String) {
  articleRate(input: {articleId: $id, helpful: $helpful, comment: $comment}) {
  errors { code message field } article { id score helpfulCount notHelpfulCount flagged
  viewerRating { helpful comment } } } }"""
STATUS = "query($id: ID!) { article(id: $id) { score helpfulCount notHelpfulCount flagged revision } }"

Users = Callable[..., Client]


def events(client: Client, article_id: str) -> list[dict[str, Any]]:
    edges = client.gql(HISTORY, s=f"article:{article_id}")["activity"]["edges"]
    return [e["node"] for e in edges]


def vote(client: Client, article_id: str, helpful: bool, comment: str | None = None) -> dict[str, Any]:
    article: dict[str, Any] = client.mutate(RATE, id=article_id, helpful=helpful, comment=comment)["article"]
    return article


def test_wilson_lower_bound() -> None:
    assert wilson(0, 0) == 0.0
    assert wilson(0, 10) == 0.0
    assert wilson(1, 1) == pytest.approx(0.2065, abs=1e-4)
    assert wilson(5, 5) == pytest.approx(0.5655, abs=1e-4)
    assert wilson(3, 5) == pytest.approx(0.2307, abs=1e-4)
    assert wilson(80, 100) == pytest.approx(0.7112, abs=1e-4)
    # more evidence of the same ratio scores higher; a better ratio scores higher
    assert wilson(8, 10) < wilson(80, 100) < wilson(800, 1000)
    assert wilson(2, 5) < FLAG_BELOW < wilson(3, 5)


def test_one_vote_per_user_changeable(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    article_id = new_article(pete)["id"]
    publish(pete, article_id)
    first = vote(carol, article_id, True, "Fixed it")
    assert (first["helpfulCount"], first["notHelpfulCount"]) == (1, 0)
    assert first["score"] == pytest.approx(wilson(1, 1)) and first["viewerRating"] == {
        "helpful": True, "comment": "Fixed it"}
    again = vote(carol, article_id, True)
    assert (again["helpfulCount"], again["notHelpfulCount"]) == (1, 0)  # still one vote
    changed = vote(carol, article_id, False, "Came back the next day")
    assert (changed["helpfulCount"], changed["notHelpfulCount"], changed["score"]) == (0, 1, 0.0)
    assert vote(pete, article_id, True)["helpfulCount"] == 1
    assert pete.gql(STATUS, id=article_id)["article"]["notHelpfulCount"] == 1
    rated = [e for e in events(pete, article_id) if e["kind"] == "article.rated"]
    assert [(e["actor"]["id"], e["data"]["helpful"], e["data"]["changed"]) for e in rated] == [
        ("carol", True, False), ("carol", True, True), ("carol", False, True), ("pete", True, False)]
    assert all(e["visibility"] == "INTERNAL" for e in rated)
    assert not [e for e in events(carol, article_id) if e["kind"] == "article.rated"]
    long = carol.mutate_error(RATE, id=article_id, helpful=True, comment="x" * 2001)
    assert (long["code"], long["field"]) == ("INVALID", "comment")
    assert pete.gql(STATUS, id=article_id)["article"]["helpfulCount"] == 1  # nothing written


def test_concurrent_votes_are_all_counted(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    raters = [user(f"r{i}", "agent") for i in range(8)]
    article_id = new_article(ann)["id"]
    with ThreadPoolExecutor(len(raters)) as pool:
        list(pool.map(lambda r: vote(r, article_id, r.sub != "r0"), raters))
    status = ann.gql(STATUS, id=article_id)["article"]
    assert (status["helpfulCount"], status["notHelpfulCount"]) == (7, 1)
    assert status["score"] == pytest.approx(wilson(7, 8))


def test_low_score_flags_the_article_and_recovery_clears_it(user: Users) -> None:
    ann = user("ann", "agent", kcs="contributor")
    raters = [user(f"r{i}", "agent") for i in range(MIN_VOTES)]
    article_id = new_article(ann)["id"]
    for rater in raters[:-1]:
        assert vote(rater, article_id, False)["flagged"] is False  # not enough votes yet
    flagged = vote(raters[-1], article_id, False)
    assert flagged["flagged"] is True and flagged["notHelpfulCount"] == MIN_VOTES
    notice = [e for e in events(ann, article_id) if e["kind"] == "article.flagged"]
    assert len(notice) == 1 and notice[0]["data"]["ownerId"] == "ann"
    assert notice[0]["visibility"] == "INTERNAL"
    listed = ann.gql(LIST, filter={"flagged": True})["articles"]
    assert [e["node"]["id"] for e in listed["edges"]] == [article_id]
    # raters change their minds: 2 of 5 helpful is still under the threshold, 3 of 5 is not
    assert vote(raters[0], article_id, True)["flagged"] is True
    assert vote(raters[1], article_id, True)["flagged"] is True
    recovered = vote(raters[2], article_id, True)
    assert recovered["flagged"] is False and recovered["score"] == pytest.approx(wilson(3, 5))
    unflag = [e for e in events(ann, article_id) if e["kind"] == "article.unflagged"]
    assert len(unflag) == 1 and unflag[0]["data"]["reason"] == "recovered"
    assert ann.gql(LIST, filter={"flagged": True})["articles"]["totalCount"] == 0


def test_a_licensed_revision_clears_the_flag(user: Users) -> None:
    cand = user("cand", "agent", kcs="candidate")
    cora = user("cora", "agent", kcs="contributor")
    raters = [user(f"r{i}", "agent") for i in range(2 * MIN_VOTES)]
    article_id = new_article(cand)["id"]
    for rater in raters[:MIN_VOTES]:
        vote(rater, article_id, False)
    assert cand.gql(STATUS, id=article_id)["article"]["flagged"] is True
    # the owner (a candidate, not licensed to validate) reworks it: still flagged
    cand.mutate(UPDATE, input={"articleId": article_id, "resolution": "Try turning it off and on"})
    assert cand.gql(STATUS, id=article_id)["article"]["flagged"] is True
    # a contributor's rework clears it
    cora.mutate(UPDATE, input={"articleId": article_id, "resolution": "Raise the gateway idle timeout"})
    assert cand.gql(STATUS, id=article_id)["article"]["flagged"] is False
    unflag = [e for e in events(cora, article_id) if e["kind"] == "article.unflagged"]
    assert unflag[0]["data"] == {"reason": "revised", "revision": 3, "ownerId": "cand"}
    # it is not re-flagged before MIN_VOTES new votes come in, then it is if they are bad too
    for rater in raters[MIN_VOTES:-1]:
        assert vote(rater, article_id, False)["flagged"] is False
    assert vote(raters[-1], article_id, False)["flagged"] is True
    assert [e["kind"] for e in events(cora, article_id)].count("article.flagged") == 2


def test_lists_promote_highly_rated_articles(user: Users) -> None:
    pete = user("pete", "agent", kcs="publisher")
    carol = user("carol", "customer")
    fans = [user(f"c{i}", "customer") for i in range(4)]
    good, mixed, unrated = (new_article(pete, title)["id"] for title in ("Good", "Mixed", "Unrated"))
    for article_id in (good, mixed, unrated):
        publish(pete, article_id)
    for fan in fans:
        vote(fan, good, True)
    for i, fan in enumerate(fans):
        vote(fan, mixed, i % 2 == 0)
    hidden = new_article(pete, "Internal but loved")["id"]
    pete.mutate(SET_STATE, id=hidden, state="VALIDATED")
    for sub in ("s1", "s2", "s3", "s4", "s5"):
        vote(user(sub, "agent"), hidden, True)
    staff_order = [e["node"]["title"] for e in pete.gql(LIST)["articles"]["edges"]]
    assert staff_order == ["Internal but loved", "Good", "Mixed", "Unrated"]
    page = carol.gql(LIST, first=2)["articles"]
    rest = carol.gql(LIST, first=2, after=page["pageInfo"]["endCursor"])["articles"]
    scores = [e["node"]["score"] for e in page["edges"] + rest["edges"]]
    assert [e["node"]["title"] for e in page["edges"] + rest["edges"]] == ["Good", "Mixed", "Unrated"]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(wilson(4, 4))
    assert carol.gql(STATUS, id=hidden)["article"] is None
