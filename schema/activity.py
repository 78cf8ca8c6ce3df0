"""GraphQL types of activity streams."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types.nodes import SelectedField, Selection

from hub import metrics
from hub.errors import HubError
from hub.events import Event
from resolvers import activity
from schema import fanout
from schema.common import JSON, Info, PageInfo, ctx, graphql_error, query
from schema.users import User, user_ref

log = logging.getLogger("hub.subscriptions")
T = TypeVar("T")


@strawberry.enum
class Visibility(Enum):
    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"


ID_ONLY = frozenset({"id", "__typename"})


def _reads_only(selections: Sequence[Selection], allowed: frozenset[str]) -> bool:
    """True when `selections` (through fragments) read no field but `allowed` ones."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name not in allowed:
                return False
        elif not _reads_only(selection.selections, allowed):
            return False
    return True


@strawberry.type
class ActivityEvent:
    id: strawberry.ID
    seq: int
    cursor: str
    stream: str
    kind: str
    visibility: Visibility
    summary: str
    occurred_at: datetime
    data: JSON  # type: ignore[valid-type]
    actor_id: strawberry.Private[str]

    @strawberry.field
    async def actor(self, info: Info) -> User:
        if all(_reads_only(field.selections, ID_ONLY) for field in info.selected_fields):  # `actor { id }`
            return User(id=strawberry.ID(self.actor_id), name=self.actor_id, roles=[], skills=[])
        user = await user_ref(info, self.actor_id)
        assert user is not None
        return user

    @classmethod
    def of(cls, event: Event) -> ActivityEvent:
        return cls(
            id=strawberry.ID(event.id), seq=event.seq, cursor=event.cursor, stream=event.stream,
            kind=event.kind, visibility=Visibility(event.visibility.value), summary=event.summary,
            occurred_at=event.occurred_at, data=event.data, actor_id=event.actor_id,
        )


@strawberry.type
class ActivityConnection:
    edges: list[ActivityEdge]
    page_info: PageInfo


@strawberry.type
class ActivityEdge:
    cursor: str
    node: ActivityEvent


def live(events: AsyncIterator[Event]) -> AsyncGenerator[ActivityEvent, None]:
    """Turn a resolver's event stream into GraphQL activity events (see :func:`live_as`)."""
    return live_as(events, ActivityEvent.of)


async def live_as(events: AsyncIterator[Event], make: Callable[[Event], T]) -> AsyncGenerator[T, None]:
    """Turn a resolver's event stream into GraphQL values (`make`), shaping errors like queries do.

    A resumable interruption (slow consumer, shutdown) is `extensions.code` `UNAVAILABLE` with
    `extensions.reason` and `resumable: true`: resubscribe with the last cursor received.
    """
    metrics.SUBSCRIPTIONS.inc()
    try:
        async for event in events:
            yield make(event)
    except Exception as exc:
        raise stream_error(exc) from exc
    finally:
        metrics.SUBSCRIPTIONS.dec()


def stream_error(exc: Exception, **log_fields: Any) -> GraphQLError:
    """The GraphQL error a live stream ends with (also the fan-out's lean path, `schema.fanout`):
    a resumable interruption, a known failure with its code, anything else masked (and logged)."""
    if isinstance(exc, activity.StreamInterrupted):
        error = graphql_error(exc)
        return GraphQLError(
            error.message, extensions={**(error.extensions or {}), "reason": exc.reason, "resumable": True}
        )
    if isinstance(exc, HubError):
        return graphql_error(exc)
    log.error("subscription failed", exc_info=exc, extra=log_fields)
    return GraphQLError("Internal server error", extensions={"code": "INTERNAL"})


def follow(info: Info, stream: str, after: str | None) -> AsyncGenerator[ActivityEvent, None]:
    """A stream's events for a subscription: over the hub's WebSocket the live part is fanned out
    (rendered once per event and group, `schema.fanout`); replayed events, and every other case,
    are yielded and executed per subscriber."""
    follower = fanout.follower(info, ActivityEvent.of)
    if follower is None:
        return live(activity.follow(ctx(info).fresh(), stream, after))
    return live(activity.follow_fast(ctx(info).fresh(), stream, after, follower))


@strawberry.type
class Query:
    @strawberry.field(description="History of one stream (`case:<id>`, `article:<id>`, …), oldest first.")
    async def activity(
        self, info: Info, stream: strawberry.ID, after: str | None = None, first: int | None = None
    ) -> ActivityConnection:
        events, has_next = await query(activity.page(ctx(info), stream, after, first))
        return ActivityConnection(
            edges=[ActivityEdge(cursor=e.cursor, node=ActivityEvent.of(e)) for e in events],
            page_info=PageInfo(has_next_page=has_next, end_cursor=events[-1].cursor if events else after),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every change of a case: replay after `after`, then live.")
    async def case_activity(
        self, info: Info, case_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[ActivityEvent, None]:
        stream = await query(activity.authorize(ctx(info), f"case:{case_id}"))
        async for event in follow(info, stream, after):
            yield event

    @strawberry.subscription(description="Every change of an article: replay after `after`, then live.")
    async def article_activity(
        self, info: Info, article_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[ActivityEvent, None]:
        stream = await query(activity.authorize(ctx(info), f"article:{article_id}"))
        async for event in follow(info, stream, after):
            yield event
