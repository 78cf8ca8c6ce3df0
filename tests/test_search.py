"""`search`: ranking by field weight, stemming, typos, rating boost, access rules, snippet leaks, bad input,
and the relevance floor on the labelled set (tests/search_quality)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Client, GraphQLErrors
from tests.search_quality.bench import PEOPLE, evaluate

Users = Callable[..., Client]

SEARCH = """query($q: String!, $kinds: [SearchKind!], $first: Int) {
  search(query: $q, kinds: $kinds, first: $first) { kind id title snippet score } }"""
CREATE = """mutation($input: ArticleCreateInput!) { articleCreate(input: $input) {
  errors { code message field } article { id } } }"""
UPDATE = """mutation($input: ArticleUpdateInput!) { articleUpdate(input: $input) { errors { code } article { id } } }"""
SET_STATE = """mutation($id: ID!, $state: ArticleState!) { articleSetState(input: {articleId: $id, state: $state}) {
  errors { code message } } }"""
RATE = """mutation($id: ID!) { articleRate(input: {articleId: $id, helpful: true}) { errors { code } } }"""
CASE = """mutation($input: CaseCreateInput!) { caseCreate(input: $input) { errors { code } case { id } } }"""
CASE_UPDATE = """mutation($input: CaseUpdateInput!) { caseUpdate(input: $input) { errors { code } case { id } } }"""
COMMENT = """mutation($id: ID!, $body: String!, $vis: Visibility) {
  commentAdd(input: {subjectId: $id, body: $body, visibility: $vis}) { errors { code message } comment { id } } }"""
PARTICIPANT = """mutation($id: ID!, $uid: ID!) { caseAddParticipant(input: {caseId: $id, userId: $uid}) {
  errors { code } } }"""

BODY = {"issue": "Something does not work.", "environment": "Office laptops.", "cause": "Unknown.",
        "resolution": "Restart the device.", "tags": [], "product": "Acme"}


def article(author: Client, title: str, *, publish: bool = True, **fields: Any) -> str:
    audience = "EXTERNAL" if publish else "INTERNAL"
    art: dict[str, Any] = author.mutate(CREATE, input={**BODY, "title": title, "audience": audience, **fields})
    article_id: str = art["article"]["id"]
    if publish:
        author.mutate(SET_STATE, id=article_id, state="VALIDATED")
    return article_id


def case(client: Client, subject: str, description: str = "", **extra: Any) -> str:
    case_id: str = client.mutate(CASE, input={"subject": subject, "description": description, **extra})["case"]["id"]
    return case_id


def search(client: Client, q: str, **variables: Any) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = client.gql(SEARCH, q=q, **variables)["search"]
    return hits


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [h["id"] for h in hits]


@pytest.fixture
def editor(user: Users) -> Client:
    return user("ed", ["editor", "agent"], kcs="publisher")


def test_title_outweighs_issue_outweighs_body(user: Users, editor: Client) -> None:
    # given the same word once in the title, once in the issue, once in the resolution
    in_body = article(editor, "Monitor flickers", resolution="Replace the router cable and restart the device.")
    in_title = article(editor, "Router reboots", resolution="Replace the power cable and restart the device.")
    in_issue = article(editor, "Network drops", issue="The router loses its connection.")
    # when / then: title > issue > body, for staff and customers alike
    for who in (user("alice", "agent"), user("carol", "customer")):
        hits = search(who, "router")
        assert ids(hits) == [in_title, in_issue, in_body]
        assert hits[0]["score"] > hits[1]["score"] > hits[2]["score"] > 0
        assert {h["kind"] for h in hits} == {"ARTICLE"}
        assert hits[0]["title"] == "Router reboots"


def test_stemming_matches_other_forms_of_a_word(user: Users, editor: Client) -> None:
    printer = article(editor, "Printer shows offline", issue="The printer is offline.")
    vpn = article(editor, "VPN disconnects", issue="The tunnel disconnects after a while.")
    carol = user("carol", "customer")
    assert ids(search(carol, "printers"))[:1] == [printer]
    assert ids(search(carol, "PRINTERS offline!!"))[:1] == [printer]
    assert ids(search(carol, "disconnecting"))[:1] == [vpn]
    assert ids(search(carol, "disconnected vpns"))[:1] == [vpn]


def test_typos_find_the_intended_word(user: Users, editor: Client) -> None:
    password = article(editor, "Reset a forgotten password", issue="You cannot sign in.")
    printer = article(editor, "Printer shows offline", issue="Jobs stay in the queue.")
    carol = user("carol", "customer")
    assert ids(search(carol, "pasword"))[:1] == [password]  # a missing letter
    assert ids(search(carol, "passwrod reset"))[:1] == [password]  # swapped letters
    assert ids(search(carol, "pritner"))[:1] == [printer]
    assert search(carol, "xylophone") == []  # nothing close: no hit rather than noise


def test_well_rated_articles_rank_higher(user: Users, editor: Client) -> None:
    # given two articles equally relevant to the query
    plain = article(editor, "Scanner saves blank pages")
    rated = article(editor, "Scanner saves blank pages")
    carol = user("carol", "customer")
    before = search(carol, "scanner blank pages")
    assert before[0]["score"] == before[1]["score"]
    # when readers rate one of them helpful
    for name in ("c1", "c2", "c3", "c4"):
        user(name, "customer").mutate(RATE, id=rated)
    # then it ranks first
    after = search(carol, "scanner blank pages")
    assert ids(after) == [rated, plain]
    assert after[0]["score"] > after[1]["score"]


def test_index_follows_article_edits_and_publication(user: Users, editor: Client) -> None:
    art = article(editor, "Outlook stops syncing")
    carol, alice = user("carol", "customer"), user("alice", "agent")
    assert ids(search(carol, "outlook")) == [art]
    editor.mutate(UPDATE, input={"articleId": art, "title": "Mail client stops syncing"})
    assert search(carol, "outlook") == []
    assert ids(search(carol, "mail client")) == [art]
    # un-publishing hides it from customers at once; staff still find it
    editor.mutate(SET_STATE, id=art, state="NOT_VALIDATED")
    assert search(carol, "mail client") == []
    assert ids(search(alice, "mail client")) == [art]


def test_customers_find_only_published_articles_and_their_own_cases(user: Users, editor: Client) -> None:
    internal = article(editor, "Gateway keepalive internal procedure", publish=False)
    draft = article(editor, "Gateway keepalive external draft", publish=False, audience="EXTERNAL")
    public = article(editor, "Gateway keepalive explained")
    carol, dan, alice = user("carol", "customer"), user("dan", "customer"), user("alice", "agent")
    mine = case(carol, "Gateway keepalive question")
    theirs = case(dan, "Gateway keepalive trouble")
    # customers: published articles and the cases they read
    assert set(ids(search(carol, "gateway keepalive"))) == {public, mine}
    assert set(ids(search(dan, "gateway keepalive"))) == {public, theirs}
    # staff: everything of their tenant
    assert set(ids(search(alice, "gateway keepalive"))) == {internal, draft, public, mine, theirs}
    assert set(ids(search(alice, "gateway keepalive", kinds=["CASE"]))) == {mine, theirs}
    top = search(alice, "gateway keepalive", kinds=["ARTICLE"], first=1)
    assert len(top) == 1 and top[0]["kind"] == "ARTICLE"
    # another tenant finds nothing
    assert search(user("eve", "agent", tenant_id="elsewhere-" + alice.tenant), "gateway keepalive") == []
    # adding a customer to a case lets them find it
    user("frank", "customer").gql("{ viewer { id } }")
    alice.mutate(PARTICIPANT, id=theirs, uid="frank")
    assert ids(search(user("frank", "customer"), "gateway keepalive", kinds=["CASE"])) == [theirs]


def test_internal_text_never_matches_or_shows_for_customers(user: Users) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = case(carol, "Laptop overheats", "The fan is loud when the laptop overheats during calls.")
    alice.mutate(CASE_UPDATE, input={"caseId": case_id, "cause": "Firmware zebrafault in the thermal module",
                                     "symptom": "Thermal zebrafault logged", "tags": ["zebratag"]})
    alice.gql(COMMENT, id=case_id, body="Internal: overheats because of zebrafault, customer on old BIOS.",
              vis="INTERNAL")
    carol.mutate(COMMENT, id=case_id, body="It overheats again today, the fan is very loud.")
    # customers never match internal text (so its existence does not leak either)
    for word in ("zebrafault", "zebratag", "bios"):
        assert search(carol, word) == []
        assert ids(search(alice, word)) == [case_id]
    # a public match shows only public text in the snippet
    (hit,) = search(carol, "overheats")
    assert hit["id"] == case_id and "overheats" in hit["snippet"]
    assert "zebra" not in hit["snippet"] and "BIOS" not in hit["snippet"] and "Internal" not in hit["snippet"]
    # staff see where the internal match is
    staff_hit = search(alice, "zebrafault thermal")[0]
    assert "zebrafault" in staff_hit["snippet"]


def test_snippet_shows_the_matching_passage(user: Users, editor: Client) -> None:
    long_resolution = " ".join(["Open the settings page and check the general options."] * 10
                               + ["Then enable split tunnelling so only company traffic uses the VPN."])
    art = article(editor, "VPN is slow", resolution=long_resolution)
    (hit,) = search(user("carol", "customer"), "split tunnelling")
    assert hit["id"] == art
    assert "split tunnelling" in hit["snippet"] and hit["snippet"].startswith("…")
    assert len(hit["snippet"]) <= 200


@pytest.mark.parametrize(("query", "field"), [
    ("", "query"), ("   ", "query"), ("x" * 501, "query"), ("!!! ??? .*", "query"), ("the and of", "query"),
])
def test_bad_queries_are_invalid(user: Users, query: str, field: str) -> None:
    with pytest.raises(GraphQLErrors) as err:
        search(user("carol", "customer"), query)
    assert err.value.codes == ["INVALID"]
    assert err.value.errors[0]["extensions"]["field"] == field


def test_operators_in_the_query_are_plain_text(user: Users, editor: Client) -> None:
    article(editor, "Printer shows offline")
    carol = user("carol", "customer")
    assert search(carol, '{"$ne": null}') == []
    assert search(carol, '{"$regex": ".*"} $where') == []
    assert search(carol, "printer.*|$or") != []  # the word still counts, the rest is punctuation
    with pytest.raises(GraphQLErrors) as err:
        search(carol, "printer", first=0)
    assert err.value.codes == ["INVALID"]
    with pytest.raises(GraphQLErrors):
        search(carol, "printer", kinds=["NOPE"])


def test_quality_floor_on_the_labelled_set(user: Users) -> None:
    """Relevance on 70 customer-written queries and 17 cases (tests/search_quality).

    Measured (scripts/bench_search): top-1 0.93, top-3 0.99, MRR 0.96 for search; 1.0 for
    suggestions. Without stemming, typo expansion and field weights the same set scores top-1
    0.80, top-3 0.87, MRR 0.84; without any one of them top-3 is 0.94-0.99. The floors sit
    between: losing the analysis as a whole fails, rewording a ranking detail does not.
    """
    clients = {who: user(who, roles, **({"kcs": kcs} if kcs else {})) for who, (roles, kcs) in PEOPLE.items()}

    async def call(who: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(clients[who].gql, query, **variables)

    results = asyncio.run(evaluate(call))
    assert results["articles"] >= 25 and results["search"]["n"] >= 40
    assert results["search"]["top1"] >= 0.85, results
    assert results["search"]["top3"] >= 0.9, results
    assert results["search"]["mrr"] >= 0.88, results
    assert results["suggestions"]["top3"] >= 0.9, results
