"""Shared GraphQL building blocks: context access, JSON, UserError, Relay connections, payloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Any, Generic, NewType, TypeVar, cast

import strawberry
from graphql import FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode

from hub.errors import ErrorCode, HubError
from resolvers.context import Context
from resolvers.pagination import Page

Info = strawberry.Info[Context, None]
T = TypeVar("T")
P = TypeVar("P")

JSON = strawberry.scalar(
    NewType("JSON", object),
    description="Arbitrary JSON value",
    serialize=lambda v: v,
    parse_value=lambda v: v,
)


def ctx(info: Info) -> Context:
    return info.context


@strawberry.enum
class UserErrorCode(Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"


@strawberry.type
class UserError:
    code: UserErrorCode
    message: str
    field: str | None = None

    @classmethod
    def of(cls, exc: HubError) -> UserError:
        code = exc.code.value if exc.code.value in UserErrorCode.__members__ else "INVALID"
        return cls(code=UserErrorCode(code), message=exc.message, field=exc.field)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page, make: Callable[[dict[str, Any]], T]) -> Connection[T]:
        return cls(
            edges=[Edge(cursor=c, node=make(d)) for c, d in zip(page.cursors, page.items, strict=True)],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        )


EnumT = TypeVar("EnumT", bound=Enum)


def enum_member(enum: type[EnumT], value: Any) -> EnumT:
    """`enum(value)` by a dict lookup (stored values of every row read), the call only for a miss."""
    member = enum._value2member_map_.get(value)
    return cast(EnumT, member) if member is not None else enum(value)


def selects(info: Info, *path: str) -> bool:
    """Whether the current field's selection asks for `path` (field names, aliases aside, through
    fragments). Conservative: `@skip`/`@include` are not evaluated, so it may answer True for a
    field that is then skipped; use it to prefetch, never to decide what a client may see."""
    raw = info._raw_info
    nodes: list[Any] = list(raw.field_nodes)
    for name in path:
        found: list[Any] = []
        pending = [n.selection_set for n in nodes if n.selection_set is not None]
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    if selection.name.value == name:
                        found.append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = raw.fragments.get(selection.name.value)
                    if fragment is not None:
                        pending.append(fragment.selection_set)
        if not found:
            return False
        nodes = found
    return True


def graphql_error(exc: HubError) -> GraphQLError:
    extensions: dict[str, Any] = {"code": exc.code.value}
    if exc.field:
        extensions["field"] = exc.field
    if (retry := getattr(exc, "retry_after", None)) is not None:
        extensions["retryAfter"] = retry  # hub.ratelimit.RateLimited
    return GraphQLError(exc.message, extensions=extensions)


async def query(call: Awaitable[T]) -> T:
    """Run a query resolver; a `HubError` becomes a GraphQL error with `extensions.code`."""
    try:
        return await call
    except HubError as exc:
        raise graphql_error(exc) from exc


async def mutate(
    payload: Callable[..., P],
    call: Awaitable[dict[str, Any]],
    **convert: Callable[[Any], Any],
) -> P:
    """Run a mutation resolver and wrap its result (or its `HubError`) in the payload type."""
    try:
        result = await call
    except HubError as exc:
        if exc.code is ErrorCode.INTERNAL:
            raise
        return payload(errors=[UserError.of(exc)])
    values = {k: (convert[k](v) if k in convert and v is not None else v) for k, v in result.items()}
    return payload(errors=[], **values)


def iso(value: datetime | None) -> datetime | None:
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """An input object as a plain dict (snake_case keys, enum values, UNSET dropped)."""
    return {k: _plain(v) for k, v in vars(obj).items() if v is not strawberry.UNSET}
