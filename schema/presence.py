"""GraphQL types and root fields of presence (see `resolvers.presence` for the audience rules)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError

from hub import metrics
from hub.errors import HubError
from resolvers import presence, users
from schema.common import Info, UserError, ctx, graphql_error, mutate, query, to_dict
from schema.users import User

log = logging.getLogger("hub.subscriptions")
T = TypeVar("T")


async def live_values(values: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Pass a resolver's live values through, shaping errors like queries do (HubError → code,
    anything else masked as INTERNAL). Used by the presence, chat and remote subscriptions."""
    metrics.SUBSCRIPTIONS.inc()
    try:
        async for value in values:
            yield value
    except HubError as exc:
        raise graphql_error(exc) from exc
    except Exception as exc:
        log.exception("subscription failed")
        raise GraphQLError("Internal server error", extensions={"code": "INTERNAL"}) from exc
    finally:
        metrics.SUBSCRIPTIONS.dec()


@strawberry.enum(description="What a user is doing on a resource.")
class PresenceState(Enum):
    VIEWING = "VIEWING"
    EDITING = "EDITING"
    COMPOSING = "COMPOSING"
    IDLE = "IDLE"


@strawberry.enum(description="A user's availability (OFFLINE while heartbeating = invisible).")
class PresenceStatus(Enum):
    AVAILABLE = "AVAILABLE"
    BUSY = "BUSY"
    AWAY = "AWAY"
    OFFLINE = "OFFLINE"


@strawberry.enum
class PresenceEventKind(Enum):
    SNAPSHOT = "SNAPSHOT"
    JOINED = "JOINED"
    UPDATED = "UPDATED"
    LEFT = "LEFT"


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@strawberry.type(description="One user on one resource. Customers get anonymous entries for others.")
class Presence:
    resource_id: strawberry.ID
    state: PresenceState
    status: PresenceStatus | None = strawberry.field(description="null when anonymised")
    updated_at: datetime
    anonymous: bool
    role: str = strawberry.field(description="`agent` (any staff) or `customer`")
    item: strawberry.Private[presence.Item]

    @classmethod
    def of(cls, resource_id: str, item: presence.Item) -> Presence:
        return cls(
            resource_id=strawberry.ID(resource_id), state=PresenceState(item.state),
            status=PresenceStatus(item.status) if item.status else None, updated_at=_time(item.updated_at),
            anonymous=item.anonymous, role=item.label, item=item,
        )

    @strawberry.field(description="The user; an anonymous `anonymous:<role>` stand-in for customers.")
    async def user(self, info: Info) -> User:
        item = self.item
        online = item.status not in (None, "OFFLINE")
        if item.uid is None:
            return User(
                id=strawberry.ID(item.key), name=item.name, roles=[item.label], skills=[], online_hint=True
            )
        doc = await users.get(ctx(info), item.uid) or users.placeholder(item.uid)
        return User.from_doc({**doc, "online": online})


@strawberry.type
class PresenceEvent:
    kind: PresenceEventKind
    resource_id: strawberry.ID
    presence: Presence | None = strawberry.field(description="The entry that changed (null for SNAPSHOT)")
    presences: list[Presence] = strawberry.field(description="Everyone on the resource after this event")
    at: datetime


@strawberry.input
class PresenceUpdateInput:
    resource_id: strawberry.ID | None = strawberry.field(
        default=None, description="The case, article, thread… (null: a tenant-wide heartbeat only)")
    state: PresenceState = PresenceState.VIEWING
    status: PresenceStatus | None = None
    device: str | None = strawberry.field(default=None, description="One id per tab/device (default `default`)")


@strawberry.type
class PresenceUpdatePayload:
    errors: list[UserError]
    presence: Presence | None = None
    ttl_seconds: float | None = strawberry.field(default=None, description="Heartbeat before this elapses")


@strawberry.input
class PresenceLeaveInput:
    resource_id: strawberry.ID
    device: str | None = None


@strawberry.type
class PresenceLeavePayload:
    errors: list[UserError]
    left: bool = False


def _update_payload(result: dict[str, Any]) -> dict[str, Any]:
    item = result.pop("presence")
    resource_id = result.pop("resource_id")
    return {**result, "presence": Presence.of(resource_id, item) if item and resource_id else None}


@strawberry.type
class Query:
    @strawberry.field(description="Who is on a resource now (as announced; see presenceChanged).")
    async def presence(self, info: Info, resource_id: strawberry.ID) -> list[Presence]:
        items = await query(presence.list_presence(ctx(info), resource_id))
        return [Presence.of(resource_id, i) for i in items]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Heartbeat: set state on a resource (and status); repeat within the TTL.")
    async def presence_update(self, info: Info, input: PresenceUpdateInput) -> PresenceUpdatePayload:
        async def run() -> dict[str, Any]:
            return _update_payload(await presence.update(ctx(info), to_dict(input)))

        return await mutate(PresenceUpdatePayload, run())

    @strawberry.mutation(description="This device leaves the resource (announced after the flap window).")
    async def presence_leave(self, info: Info, input: PresenceLeaveInput) -> PresenceLeavePayload:
        return await mutate(PresenceLeavePayload, presence.leave(ctx(info), to_dict(input)))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="A SNAPSHOT first, then JOINED / UPDATED / LEFT changes.")
    async def presence_changed(
        self, info: Info, resource_id: strawberry.ID
    ) -> AsyncGenerator[PresenceEvent, None]:
        await query(presence.authorize(ctx(info), resource_id))
        async for change in live_values(presence.follow(ctx(info).fresh(), resource_id)):
            yield PresenceEvent(
                kind=PresenceEventKind(change.kind), resource_id=strawberry.ID(change.resource_id),
                presence=Presence.of(change.resource_id, change.item) if change.item else None,
                presences=[Presence.of(change.resource_id, i) for i in change.items],
                at=datetime.now(UTC),
            )
