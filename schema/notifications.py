"""GraphQL types and root fields of the notification inbox."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry

from hub.events import Event
from resolvers import notifications
from schema.activity import live_as
from schema.common import Info, PageInfo, UserError, ctx, mutate, query, to_dict


@strawberry.type(description="One evolving notification per subject: `count` events since it was last read.")
class Notification:
    id: strawberry.ID
    kind: str = strawberry.field(description="Kind of the latest event, e.g. `case.status_changed`.")
    subject_id: strawberry.ID
    subject_kind: str = strawberry.field(description="`case`, `article`, …")
    stream: str
    summary: str = strawberry.field(description="Summary of the latest event.")
    read: bool
    count: int
    created_at: datetime
    updated_at: datetime
    seq: int | None = strawberry.field(default=None, description="Set on `notificationReceived` items.")
    cursor: str | None = strawberry.field(
        default=None, description="Set on `notificationReceived` items: resume with `after: cursor`."
    )

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Notification:
        return cls.from_snapshot(notifications.snapshot(doc))

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], event: Event | None = None) -> Notification:
        return cls(
            id=strawberry.ID(data["id"]), kind=data["kind"], subject_id=strawberry.ID(data["subjectId"]),
            subject_kind=data["subjectKind"], stream=data["stream"], summary=data["summary"],
            read=data["read"], count=data["count"],
            created_at=datetime.fromisoformat(data["createdAt"]),
            updated_at=datetime.fromisoformat(data["updatedAt"]),
            seq=event.seq if event else None, cursor=event.cursor if event else None,
        )

    @classmethod
    def from_event(cls, event: Event) -> Notification:
        return cls.from_snapshot(event.data, event)


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo
    unread_count: int
    stream_cursor: str = strawberry.field(
        description="Pass as `notificationReceived(after:)` to get every change since this read."
    )


@strawberry.input
class NotificationMarkReadInput:
    ids: list[strawberry.ID] | None = None
    all: bool = False


@strawberry.type
class NotificationMarkReadPayload:
    errors: list[UserError]
    notifications: list[Notification] | None = None
    unread_count: int | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The caller's inbox, most recently updated first.")
    async def notifications(
        self, info: Info, unread_only: bool | None = False, first: int | None = None, after: str | None = None,
    ) -> NotificationConnection:
        c = ctx(info)
        cursor = await query(notifications.stream_cursor(c))  # before the list: nothing missed
        page = await query(notifications.list_notifications(c, bool(unread_only), first, after))
        return NotificationConnection(
            edges=[NotificationEdge(cursor=cur, node=Notification.from_doc(d))
                   for cur, d in zip(page.cursors, page.items, strict=True)],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            unread_count=await query(notifications.unread_count(c)),
            stream_cursor=cursor,
        )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def notification_mark_read(self, info: Info, input: NotificationMarkReadInput) -> NotificationMarkReadPayload:
        return await mutate(
            NotificationMarkReadPayload, notifications.mark_read(ctx(info), to_dict(input)),
            notifications=lambda docs: [Notification.from_doc(d) for d in docs],
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The caller's notifications as they change: replay after `after`, then live.")
    async def notification_received(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[Notification, None]:
        async for item in live_as(notifications.follow(ctx(info).fresh(), after), Notification.from_event):
            yield item
