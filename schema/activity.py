"""GraphQL types of activity streams."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from enum import Enum

import strawberry
from graphql import GraphQLError

from hub import metrics
from hub.errors import HubError
from hub.events import Event
from resolvers import activity
from schema.common import JSON, Info, PageInfo, ctx, graphql_error, query
from schema.users import User, user_ref

log = logging.getLogger("hub.subscriptions")


@strawberry.enum
class Visibility(Enum):
    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"


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


async def live(events: AsyncIterator[Event]) -> AsyncGenerator[ActivityEvent, None]:
    """Turn a resolver's event stream into GraphQL events, shaping errors like queries do."""
    metrics.SUBSCRIPTIONS.inc()
    try:
        async for event in events:
            yield ActivityEvent.of(event)
    except HubError as exc:
        raise graphql_error(exc) from exc
    except Exception as exc:
        log.exception("subscription failed")
        raise GraphQLError("Internal server error", extensions={"code": "INTERNAL"}) from exc
    finally:
        metrics.SUBSCRIPTIONS.dec()


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
        async for event in live(activity.follow(ctx(info).fresh(), stream, after)):
            yield event
