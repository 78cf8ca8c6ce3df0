"""The GraphQL schema: one module per domain, merged here."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Callable
from datetime import datetime
from functools import partial
from operator import attrgetter
from typing import Any

import strawberry
from graphql import GraphQLEnumType, GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, Undefined
from graphql.pyutils import Path, gather_with_cancel
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import merge_types

from hub.settings import Settings
from schema import limits
from schema.errors import ShapeErrors

# One module per domain; each may define `Query`, `Mutation` and `Subscription` classes.
DOMAINS = (
    "users", "cases", "threads", "workspace", "activity", "notifications", "presence", "chat",
    "swarm", "remote", "articles", "knowledge", "search", "selfservice", "forum", "ideas",
    "metrics", "webhooks",
)


def _roots(kind: str) -> tuple[type, ...]:
    found = []
    for name in DOMAINS:
        if importlib.util.find_spec(f"schema.{name}") is None:
            continue
        module = importlib.import_module(f"schema.{name}")
        if (root := getattr(module, kind, None)) is not None:
            found.append(root)
    return tuple(found)


Query = merge_types("Query", _roots("Query"))
Mutation = merge_types("Mutation", _roots("Mutation"))
Subscription = merge_types("Subscription", _roots("Subscription"))


_Leaf = tuple[Callable[[Any], Any], GraphQLLeafType, bool, dict[Any, str] | None]
"""A plain attribute field of a leaf type: (its reader, its type, non-null, enum member → name)."""


def _leaf_fields(schema: GraphQLSchema) -> dict[tuple[str, str], _Leaf]:
    """The fields strawberry resolves by reading an attribute ("basic" fields: no resolver, no
    field extension, no permission) whose type is a scalar or an enum, by (type name, field name)."""
    found: dict[tuple[str, str], _Leaf] = {}
    for type_name, gql_type in schema.type_map.items():
        if not isinstance(gql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in gql_type.fields.items():
            resolve = field.resolve
            if resolve is None or not getattr(resolve, "_is_default", False) or field.args:
                continue
            definition = (field.extensions or {}).get("strawberry-definition")
            if definition is None:
                continue
            reader: Callable[[Any], Any] = (
                attrgetter(definition.python_name) if definition.default_resolver is getattr
                else partial(resolve, info=None)
            )
            non_null = isinstance(field.type, GraphQLNonNull)
            leaf = field.type.of_type if non_null else field.type
            if not isinstance(leaf, GraphQLLeafType):
                continue
            names: dict[Any, str] | None = None
            wrapped = getattr(leaf, "wrapped_cls", None)  # strawberry's enums take enum members
            if isinstance(leaf, GraphQLEnumType) and wrapped is not None:
                names = {}
                for member in wrapped:
                    with contextlib.suppress(Exception):  # left to graphql-core
                        names.setdefault(member, leaf.coerce_output_value(member))
            found[(type_name, field_name)] = (reader, leaf, non_null, names)
    return found


_PLAIN = frozenset({str, int, float, bool, datetime})
_MISS = object()


class HubExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with a shortcut for plain attribute fields of scalar/enum type.

    For every field graphql-core makes a `Path`, a `GraphQLResolveInfo`, calls strawberry's
    resolver chain and walks `complete_value`: most of the CPU of a query returning a few hundred
    scalars. For a strawberry "basic" field (an attribute read: no resolver, no field extension,
    no permission) of scalar or enum type, with no resolve middleware (schema extension with a
    `resolve` hook) in play, `execute_fields` reads the attribute and coerces it directly.
    Whenever that would not give a plain value (null on a non-null field, a coercion error, an
    awaitable, an exception), the field takes graphql-core's own path, which reads the attribute
    again (a side-effect-free read) and reports the error exactly as before.
    """

    leaves: dict[tuple[str, str], _Leaf] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._shortcut = not (manager is not None and manager.middlewares)

    def execute_fields(
        self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
        grouped_field_set: Any, position_context: Any,
    ) -> Any:
        # graphql-core 3.3's `Executor.execute_fields`, plus the leaf shortcut
        if not self._shortcut:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        leaves = self.leaves
        type_name = parent_type.name
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                node = field_details_list[0].node
                leaf = leaves.get((type_name, node.name.value))
                if leaf is not None and not node.arguments:
                    value = self._leaf_value(leaf, source_value)
                    if value is not _MISS:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type, source_value, field_details_list, Path(path, response_name, type_name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:  # settle what other fields started: they may fail too
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _leaf_value(self, leaf: _Leaf, source: Any) -> Any:
        """The completed value of a basic leaf field, or `_MISS` when graphql-core must decide."""
        read, leaf_type, non_null, names = leaf
        try:
            value = read(source)
            if value is None:
                return _MISS if non_null else None
            if names is not None and (name := names.get(value)) is not None:
                return name
            if type(value) in _PLAIN or not (isinstance(value, Exception) or self.is_awaitable(value)):
                coerced = leaf_type.coerce_output_value(value)
                if coerced is not None and coerced is not Undefined:
                    return coerced
        except Exception:  # graphql-core's path reports it
            pass
        return _MISS


def _executor_for(schema: GraphQLSchema) -> type[HubExecutor]:
    return type("HubExecutor", (HubExecutor,), {"leaves": _leaf_fields(schema)})


class HubSchema(strawberry.Schema):
    """Strawberry's schema minus its traceback logging: `ShapeErrors` logs what is unexpected.

    `build()` also records the limits its extensions enforce (the extra validation rules, the
    token and cost limits), so the fan-out's lean subscribe path (`schema.fanout`) can check a
    document exactly as strawberry would."""

    hub_validation_rules: tuple[type[ASTValidationRule], ...] = ()
    """Validation rules added to graphql's `specified_rules` (depth, aliases, introspection-off)."""
    hub_max_tokens: int | None = None
    hub_max_cost: int | None = None

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        return None


def build(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the request limits and error shaping of `settings`."""
    settings = settings or Settings()
    # Factories, not instances: strawberry sets `execution_context` on each extension object, so a
    # shared instance would be raced by concurrent requests. Order matters: the cost limiter runs
    # after the validation cache (limits.QueryCostLimiter).
    # The limiters' rule classes are made once, so `ValidationCache` (keyed on the rules) hits.
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if settings.production:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        ShapeErrors,
        lambda: limits.SafeParserCache(maxsize=1000),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
    ]
    extensions += [
        lambda: ValidationCache(maxsize=1000),
        lambda: limits.QueryCostLimiter(max_cost=settings.max_cost),
    ]
    query, subscription = Query, Subscription
    if settings.env == "test":  # `_debugFail` fields prove error masking (schema/limits.py)
        query = merge_types("Query", (Query, limits.DebugQuery))
        subscription = merge_types("Subscription", (Subscription, limits.DebugSubscription))
    built = HubSchema(
        query=query, mutation=Mutation, subscription=subscription, extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True,
            disable_field_suggestions=settings.production,
            batching_config={"max_operations": settings.max_batch},
        ),
    )
    built.execution_context_class = _executor_for(built._schema)
    built.hub_validation_rules = tuple(rules)
    built.hub_max_tokens = settings.max_tokens
    built.hub_max_cost = settings.max_cost
    return built
