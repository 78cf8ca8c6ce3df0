"""The query-path shortcuts (docs/performance.md, issue #9) change CPU, never answers: the leaf
shortcut of `schema.HubExecutor`, the comment authors' prefetch and the verified-token cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from hub import auth
from hub.errors import HubError
from resolvers.loaders import Loader
from schema import _executor_for
from tests.harness import SECRET, Client, token

# -- the leaf shortcut: same data and same errors as strawberry's own executor --------------------


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    color: Color
    at: datetime
    count: int
    note: str | None
    must: str  # holds None in one item: graphql-core's non-null error
    number: int  # holds a string in one item: graphql-core's coercion error


def _items() -> list[Item]:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    good = [Item(id=strawberry.ID(f"i{i}"), name=f"n{i}", color=Color.BLUE if i % 2 else Color.RED, at=at,
                 count=i, note=None if i % 2 else "x", must="m", number=i) for i in range(3)]
    return good


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()

    @strawberry.field
    def broken(self) -> list[Item | None]:
        items: list[Item | None] = list(_items())
        items[1].must = None  # type: ignore[assignment, union-attr]
        items[2].number = "not a number"  # type: ignore[assignment, union-attr]
        return items


QUERIES = [
    "{ items { id name color at count note must number __typename } }",
    "{ items { ...F a: name b: color } } fragment F on Item { id ... on Item { count note } }",
    "{ broken { id must } }",
    "{ broken { id number } }",
    "{ broken { name color } }",
]


def _pair(extensions: list[Any] | None = None) -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query, extensions=extensions or [])
    fast = strawberry.Schema(query=Query, extensions=extensions or [])
    fast.execution_context_class = _executor_for(fast._schema)
    return plain, fast


def _answer(schema: strawberry.Schema, query: str) -> tuple[Any, list[Any]]:
    result = schema.execute_sync(query)
    return result.data, [e.formatted for e in result.errors or []]


@pytest.mark.parametrize("query", QUERIES)
def test_leaf_shortcut_answers_like_graphql_core(query: str) -> None:
    # given the same schema with strawberry's executor and with the hub's
    plain, fast = _pair()
    # when both run the query / then data and errors (messages, paths, locations) are identical
    assert _answer(fast, query) == _answer(plain, query)


def test_leaf_shortcut_reports_null_and_coercion_errors() -> None:
    _, fast = _pair()
    data, errors = _answer(fast, "{ broken { id must number } }")
    assert data == {"broken": [{"id": "i0", "must": "m", "number": 0}, None, None]}
    assert [e["path"] for e in errors] == [["broken", 1, "must"], ["broken", 2, "number"]]
    assert "Cannot return null for non-nullable field Item.must" in errors[0]["message"]


def test_leaf_shortcut_steps_aside_for_resolve_hooks() -> None:
    # given an extension that wraps every resolver (graphql-core middleware)
    seen: list[str] = []

    class Upper(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            value = _next(root, info, *args, **kwargs)
            return value.upper() if isinstance(value, str) else value

    plain, fast = _pair([Upper])
    # when a query runs / then the hook saw (and changed) every leaf, as without the shortcut
    assert _answer(fast, "{ items { name note } }") == _answer(plain, "{ items { name note } }")
    seen.clear()
    assert _answer(fast, "{ items { name } }")[0] == {"items": [{"name": "N0"}, {"name": "N1"}, {"name": "N2"}]}
    assert seen == ["items", "name", "name", "name"]


# -- comment authors: prefetched in one batch when selected, same answers ------------------------

CREATE = """mutation($s: String!) { caseCreate(input: {subject: $s}) { errors { code } case { id } } }"""
COMMENT = """mutation($id: ID!, $b: String!, $v: Visibility!) { commentAdd(input: {subjectId: $id, body: $b,
  visibility: $v}) { errors { code message } comment { id } } }"""
AUTHORS = [
    """query($id: ID!) { case(id: $id) { comments { edges { node { body author { id name } } } } } }""",
    """query($id: ID!) { case(id: $id) { comments { edges { node { body ...A } } } } }
       fragment A on Comment { author { id name } }""",
    """query($id: ID!) { case(id: $id) { comments { edges { node { body
       ... on Comment { writer: author { id name } } } } } } }""",
]


def _authors(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for edge in data["case"]["comments"]["edges"]:
        node = edge["node"]
        who = node.get("author") or node.get("writer")
        out.append((node["body"], who["id"], who["name"]))
    return out


def test_comment_authors_resolve_through_fragments_and_aliases(user: Callable[..., Client]) -> None:
    # given a customer's case with comments by the customer and two agents, one of them internal
    carol = user("carol", "customer", name="Carol C")
    alice = user("alice", "agent", name="Alice A")
    bob = user("bob", "agent", name="Bob B")
    for client in (carol, alice, bob):
        client.gql("{ viewer { id } }")  # profiles are kept from the tokens
    case_id = carol.mutate(CREATE, s="Printer")["case"]["id"]
    carol.mutate(COMMENT, id=case_id, b="help", v="PUBLIC")
    alice.mutate(COMMENT, id=case_id, b="on it", v="PUBLIC")
    bob.mutate(COMMENT, id=case_id, b="internal note", v="INTERNAL")
    alice.mutate(COMMENT, id=case_id, b="fixed", v="PUBLIC")
    staff_view = [("help", "carol", "Carol C"), ("on it", "alice", "Alice A"),
                  ("internal note", "bob", "Bob B"), ("fixed", "alice", "Alice A")]
    # when each spelling of the selection is asked / then every comment has its own author
    for query in AUTHORS:
        assert _authors(alice.gql(query, id=case_id)) == staff_view
        assert _authors(carol.gql(query, id=case_id)) == [c for c in staff_view if c[0] != "internal note"]
    # and without `author` the comments still come back
    plain = alice.gql("""query($id: ID!) { case(id: $id) { comments { edges { node { body } } } } }""", id=case_id)
    assert [e["node"]["body"] for e in plain["case"]["comments"]["edges"]] == [c[0] for c in staff_view]


async def test_loader_peek_sees_only_settled_values() -> None:
    calls: list[list[str]] = []

    async def batch(keys: Any) -> dict[str, int]:
        calls.append(list(keys))
        return {k: len(k) for k in keys if k != "missing"}

    loader: Loader[str, int] = Loader(batch)
    assert loader.peek("ab") == (False, None)
    pending = loader.load("ab")
    assert loader.peek("ab") == (False, None)  # asked, not answered yet
    assert await loader.load_many(["ab", "missing"]) == [2, None]
    assert await pending == 2
    assert loader.peek("ab") == (True, 2)
    assert loader.peek("missing") == (True, None)  # known to be absent: no second read
    assert calls == [["ab", "missing"]]
    await asyncio.sleep(0)


# -- verified tokens: cached briefly, never past `exp`, never across secrets ---------------------


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(auth, "_verified", {})
    yield


@pytest.mark.usefixtures("fresh_cache")
def test_token_cache_answers_only_the_same_secret_and_issuer() -> None:
    tok = token("ann", "agent", "t1")
    first = auth.verify(tok, SECRET)
    assert auth.verify(tok, SECRET) is first  # served from the cache
    with pytest.raises(HubError, match="Invalid token"):
        auth.verify(tok, "another-secret-0123456789abcdef0123456789")
    with pytest.raises(HubError, match="Invalid token"):
        auth.verify(tok, SECRET, issuer="someone-else")
    with pytest.raises(HubError):
        auth.verify(tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"), SECRET)


@pytest.mark.usefixtures("fresh_cache")
def test_token_cache_never_outlives_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # given no clock-skew leeway and a token valid for one more second
    monkeypatch.setattr(auth, "LEEWAY", 0)
    tok = auth.mint(SECRET, sub="ann", tenant="t1", roles=["agent"], ttl=1)
    identity = auth.verify(tok, SECRET)
    assert identity.exp is not None
    (until, _), = auth._verified.values()
    assert until <= identity.exp
    # when it expires / then the cached token is refused like an uncached one
    time.sleep(max(0.0, identity.exp - time.time()) + 0.2)
    with pytest.raises(HubError, match="Token expired"):
        auth.verify(tok, SECRET)
    assert auth._verified == {}


@pytest.mark.usefixtures("fresh_cache")
def test_token_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "CACHE_SIZE", 16)
    tokens = [token(f"u{i}", "agent", "t1") for i in range(40)]
    for tok in tokens:
        auth.verify(tok, SECRET)
        assert len(auth._verified) <= 16
    assert auth.verify(tokens[-1], SECRET).sub == "u39"  # the newest stay
