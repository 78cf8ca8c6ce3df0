"""Request limits beyond strawberry's own (OWASP GraphQL cheat sheet; matrix in docs/security.md).

* :class:`QueryCostLimiter` — refuses operations whose estimated cost exceeds `HUB_MAX_COST`
  with `extensions.code = QUERY_TOO_COMPLEX`, over HTTP and WebSocket alike.
* :class:`RateLimitedTransportWS` — the graphql-transport-ws handler that spends the caller's
  subscribe budget (`HUB_RATE_LIMIT_SUBSCRIBE_PER_MIN`) on every `subscribe` message.
* :class:`DebugQuery` / :class:`DebugSubscription` — `_debugFail` fields that raise an unexpected
  exception, merged into the schema **only when `HUB_ENV=test`**, so tests can prove that
  unexpected failures are masked over HTTP and in subscriptions.

The cost model: every selected field costs 1, plus its selection's cost times its multiplier.
A field with a `first` argument multiplies by `first` (20 when absent, at most 100, the page
size `resolvers.pagination.clamp` enforces); on a connection the multiplier lands on the list
inside it (`edges`), not on `pageInfo`. Other lists of objects multiply by 20. Fragments —
named, inline, nested — count once per spread. Introspection fields cost 1 (they are bounded by
the schema, and off in production). Cost is estimated with the request's variables, which a
graphql-core `ValidationRule` cannot see (and strawberry's validation cache is keyed by the
document alone), hence a schema extension running right after validation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ErrorMessage, SubscribeMessage

from hub import ratelimit

DEFAULT_FIRST = 20
MAX_FIRST = 100
DEFAULT_LIST = 20


class _Cost:
    """Cost estimation of one operation (see the module docstring for the model)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.defaults: dict[str, Any] = {}

    def operation(self, document: DocumentNode, operation_name: str | None) -> int:
        op = get_operation_ast(document, operation_name)
        root = self.schema.get_root_type(op.operation) if op else None
        if op is None or root is None:
            return 0
        for definition in op.variable_definitions or ():
            if isinstance(definition.default_value, IntValueNode):
                self.defaults[definition.variable.name.value] = int(definition.default_value.value)
        return self.selections(op.selection_set, root, None, frozenset())

    def selections(
        self, node: SelectionSetNode, parent: GraphQLNamedType, page: int | None, seen: frozenset[str]
    ) -> int:
        """Cost of a selection set on `parent`; `page` is a pending `first` for the list inside."""
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page, seen)
            elif isinstance(selection, InlineFragmentNode):
                on = self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
                total += self.selections(selection.selection_set, on or parent, page, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # cycles are refused by validation anyway
                    continue
                on = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selections(fragment.selection_set, on or parent, page, seen | {name})
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None, seen: frozenset[str]) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0 if name == "__typename" else 1
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)) or name not in parent.fields:
            return 1
        definition = parent.fields[name]
        if node.selection_set is None:
            return 1
        is_list = is_list_type(get_nullable_type(definition.type))
        first = self.first(node, definition)
        if first is not None and not is_list:  # a connection: multiply the list inside it
            factor, inner_page = 1, first
        elif is_list:
            factor, inner_page = first if first is not None else (page or DEFAULT_LIST), None
        else:
            factor, inner_page = 1, None
        child = self.selections(node.selection_set, get_named_type(definition.type), inner_page, seen)
        return 1 + factor * child

    def first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The page size a field asks for, clamped like the resolvers clamp it; `None` if no `first`."""
        if "first" not in definition.args:
            return None
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                var = argument.value.name.value
                value = self.variables.get(var, self.defaults.get(var))
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_FIRST
        return max(0, min(value, MAX_FIRST))


def estimate_cost(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The estimated cost of the operation `operation_name` of a valid `document`."""
    return _Cost(schema, document, variables or {}).operation(document, operation_name)


class SafeParserCache(ParserCache):
    """strawberry's `ParserCache` minus a bug: its `on_parse` raised syntax errors (and the token
    limit's) outside strawberry's error handling, so over WebSocket the operation just completed,
    silently. Here a document that does not parse is left to strawberry's own parse step, which
    reports it (`error` message / HTTP error) — at the cost of parsing a bad document twice."""

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        with contextlib.suppress(GraphQLError):
            ec.graphql_document = self.cached_parse_document(ec.query, **ec.parse_options)
        yield


class QueryCostLimiter(SchemaExtension):
    """Refuses an operation whose estimated cost exceeds `max_cost` (`QUERY_TOO_COMPLEX`).

    Must come after `ValidationCache` in the schema's extensions: it runs once the document is
    known to be valid (it validates itself when nothing did yet).
    """

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.pre_execution_errors is None and ec.graphql_document is not None:
            from strawberry.schema.schema import validate_document

            ec.pre_execution_errors = validate_document(ec.schema._schema, ec.graphql_document, ec.validation_rules)
        if not ec.pre_execution_errors and ec.graphql_document is not None:
            cost = estimate_cost(ec.schema._schema, ec.graphql_document, ec.operation_name, ec.variables)
            if cost > self.max_cost:
                ec.pre_execution_errors = [GraphQLError(
                    f"Query is too complex: estimated cost {cost} exceeds the limit of {self.max_cost}",
                    extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "maxCost": self.max_cost},
                )]
        yield


class RateLimitedTransportWS(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with a per-user budget of `subscribe` messages (`RATE_LIMITED` error)."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        identity = getattr(self.context, "identity", None)
        hub = getattr(self.context, "hub", None)
        if self.connection_acknowledged and identity is not None and hub is not None:
            limit = hub.settings.rate_limit_subscribe_per_min
            key = "subscribe:" + ratelimit.caller_key(identity, "")
            retry = await ratelimit.limiter_of(hub).acquire(key, limit, 60)
            if retry is not None:
                error = GraphQLError(f"Too many subscriptions: retry in {retry} s",
                                     extensions={"code": "RATE_LIMITED", "retryAfter": retry})
                await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[error.formatted]))
                return
        await super().handle_subscribe(message)


@strawberry.type
class DebugQuery:
    """Test-only (`HUB_ENV=test`): a real unexpected failure inside a resolver."""

    @strawberry.field(name="_debugFail", description="Test only: raises an unexpected error.")
    async def debug_fail(self, delay: float = 0.0) -> bool | None:
        await asyncio.sleep(min(max(delay, 0.0), 1.0))  # lets concurrent requests interleave
        raise RuntimeError("debug failure: secret detail /etc/passwd at line 42")


@strawberry.type
class DebugSubscription:
    """Test-only (`HUB_ENV=test`): a subscription that yields once, then fails unexpectedly."""

    @strawberry.subscription(name="_debugFail", description="Test only: yields 1, then raises.")
    async def debug_fail(self, before_first: bool = False) -> AsyncGenerator[int, None]:
        if before_first:
            raise RuntimeError("debug failure: secret detail before the first event")
        yield 1
        await asyncio.sleep(0)
        raise RuntimeError("debug failure: secret detail in the stream")
