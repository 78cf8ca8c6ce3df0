"""The GraphQL schema: one module per domain, merged here."""

from __future__ import annotations

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

from hub.settings import Settings
from schema import activity, cases, users
from schema.errors import ShapeErrors


@strawberry.type
class Query(users.Query, cases.Query, activity.Query):
    pass


@strawberry.type
class Mutation(cases.Mutation):
    pass


@strawberry.type
class Subscription(activity.Subscription):
    pass


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
