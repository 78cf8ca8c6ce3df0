"""Naive Strawberry (the `naive` baseline): a broadcaster-backed subscription executed per subscriber.

Module-level types and no `from __future__ import annotations`, so strawberry resolves them.
"""

import json
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.scalars import JSON

CHANNEL = "bench|events"
bus: Any = None
"""The `hub.bus.Bus` (broadcaster on Redis) the app's lifespan connects."""


@strawberry.type
class Actor:
    id: strawberry.ID


@strawberry.type
class ActivityEvent:
    id: strawberry.ID
    seq: int
    cursor: str
    stream: str
    kind: str
    visibility: str
    summary: str
    occurred_at: str
    data: JSON
    actor: Actor


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def case_activity(self, case_id: strawberry.ID, after: str | None = None
                            ) -> AsyncGenerator[ActivityEvent, None]:
        async with bus.subscribe(CHANNEL) as sub:
            async for message in sub:
                if isinstance(message, str):
                    d = json.loads(message)
                    yield ActivityEvent(
                        id=d["id"], seq=d["seq"], cursor=d["cursor"], stream=d["stream"], kind=d["kind"],
                        visibility=d["visibility"], summary=d["summary"], occurred_at=d["occurredAt"],
                        data=d["data"], actor=Actor(id=d["actor"]["id"]))


schema = strawberry.Schema(query=Query, subscription=Subscription)
