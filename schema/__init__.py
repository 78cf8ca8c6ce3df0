"""The GraphQL schema: one module per domain, merged here."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
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


class HubSchema(strawberry.Schema):
    """Strawberry's schema minus its traceback logging: `ShapeErrors` logs what is unexpected."""

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
    return HubSchema(
        query=query, mutation=Mutation, subscription=subscription, extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True,
            disable_field_suggestions=settings.production,
            batching_config={"max_operations": settings.max_batch},
        ),
    )
