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
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from hub.settings import Settings
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
    extensions: list[Any] = [
        ShapeErrors(),
        ParserCache(maxsize=1000),
        MaxTokensLimiter(max_token_count=settings.max_tokens),
        QueryDepthLimiter(max_depth=settings.max_query_depth),
        MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        ValidationCache(maxsize=1000),
    ]
    if settings.production:
        extensions.append(AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return HubSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )
