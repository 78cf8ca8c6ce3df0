"""GraphQL types and root fields of webhooks (integrations): subscriptions, delivery log, redelivery."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import webhooks
from schema.common import JSON, Connection, Info, UserError, ctx, mutate, query, to_dict


@strawberry.enum
class WebhookDeliveryStatus(Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@strawberry.type(description="A tenant's subscription of an HTTPS endpoint to event kinds.")
class Webhook:
    id: strawberry.ID
    url: str
    kinds: list[str] = strawberry.field(description="Kind patterns (shell globs): `case.*`, `article.rated`, `*`.")
    description: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    secret_hint: str = strawberry.field(description="The last 4 characters of the signing secret.")
    max_attempts: int | None = strawberry.field(description="Attempts per delivery (null: the hub's default).")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Webhook:
        return cls(
            id=strawberry.ID(doc["_id"]), url=doc["url"], kinds=list(doc["kinds"]),
            description=doc.get("description") or "", active=bool(doc["active"]), version=int(doc["version"]),
            created_at=doc["createdAt"], updated_at=doc["updatedAt"], secret_hint=doc["secret"][-4:],
            max_attempts=doc.get("maxAttempts"),
        )


@strawberry.type(description="One attempt to POST a delivery.")
class WebhookAttempt:
    attempt: int
    at: datetime
    response_code: int | None
    latency_ms: float | None
    error: str | None


@strawberry.type(description="One event queued for one webhook, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID
    webhook_id: strawberry.ID
    event_id: strawberry.ID
    kind: str
    status: WebhookDeliveryStatus
    attempts: int
    max_attempts: int
    response_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None = strawberry.field(description="The start of the last response body.")
    next_attempt_at: datetime | None = strawberry.field(description="When a PENDING delivery is tried next.")
    created_at: datetime
    delivered_at: datetime | None
    redelivery_of: strawberry.ID | None
    attempt_log: list[WebhookAttempt]
    payload: JSON = strawberry.field(  # type: ignore[valid-type]
        description="The JSON body POSTed (the same bytes on every attempt)."
    )

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WebhookDelivery:
        import json

        return cls(
            id=strawberry.ID(doc["_id"]), webhook_id=strawberry.ID(doc["webhookId"]),
            event_id=strawberry.ID(doc["eventId"]), kind=doc["kind"],
            status=WebhookDeliveryStatus(doc["status"]), attempts=int(doc.get("attempts") or 0),
            max_attempts=int(doc.get("maxAttempts") or 0), response_code=doc.get("responseCode"),
            latency_ms=doc.get("latencyMs"), error=doc.get("error"), response_body=doc.get("responseBody"),
            next_attempt_at=doc.get("dueAt") if doc["status"] == "PENDING" else None,
            created_at=doc["createdAt"], delivered_at=doc.get("deliveredAt"),
            redelivery_of=doc.get("redeliveryOf"),
            attempt_log=[WebhookAttempt(attempt=a["attempt"], at=a["at"], response_code=a.get("responseCode"),
                                        latency_ms=a.get("latencyMs"), error=a.get("error"))
                         for a in doc.get("attemptLog") or []],
            payload=json.loads(doc["body"]),
        )


@strawberry.input
class WebhookCreateInput:
    url: str
    kinds: list[str]
    description: str | None = None
    active: bool = True
    max_attempts: int | None = None


@strawberry.type
class WebhookCreatePayload:
    errors: list[UserError]
    webhook: Webhook | None = None
    secret: str | None = strawberry.field(default=None, description="Shown once: keep it to verify signatures.")


@strawberry.input
class WebhookUpdateInput:
    webhook_id: strawberry.ID
    url: str | None = None
    kinds: list[str] | None = None
    description: str | None = None
    active: bool | None = None
    max_attempts: int | None = None
    rotate_secret: bool = False
    expected_version: int | None = None


@strawberry.type
class WebhookUpdatePayload:
    errors: list[UserError]
    webhook: Webhook | None = None
    secret: str | None = strawberry.field(default=None, description="The new secret when `rotateSecret`.")


@strawberry.input
class WebhookDeleteInput:
    webhook_id: strawberry.ID


@strawberry.type
class WebhookDeletePayload:
    errors: list[UserError]
    deleted_webhook_id: strawberry.ID | None = None


@strawberry.input
class WebhookRedeliverInput:
    delivery_id: strawberry.ID


@strawberry.type
class WebhookRedeliverPayload:
    errors: list[UserError]
    delivery: WebhookDelivery | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The tenant's webhooks, newest first (supervisors and admins).")
    async def webhooks(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Webhook]:
        page = await query(webhooks.list_webhooks(ctx(info), first, after))
        return Connection.of(page, Webhook.from_doc)

    @strawberry.field
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook | None:
        doc = await query(webhooks.get(ctx(info), id))
        return Webhook.from_doc(doc) if doc else None

    @strawberry.field(description="A webhook's delivery log, newest first.")
    async def webhook_deliveries(
        self, info: Info, webhook_id: strawberry.ID, status: WebhookDeliveryStatus | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        page = await query(webhooks.deliveries(ctx(info), webhook_id, status.value if status else None,
                                               first, after))
        return Connection.of(page, WebhookDelivery.from_doc)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def webhook_create(self, info: Info, input: WebhookCreateInput) -> WebhookCreatePayload:
        return await mutate(WebhookCreatePayload, webhooks.create(ctx(info), to_dict(input)),
                            webhook=Webhook.from_doc)

    @strawberry.mutation
    async def webhook_update(self, info: Info, input: WebhookUpdateInput) -> WebhookUpdatePayload:
        return await mutate(WebhookUpdatePayload, webhooks.update(ctx(info), to_dict(input)),
                            webhook=Webhook.from_doc)

    @strawberry.mutation
    async def webhook_delete(self, info: Info, input: WebhookDeleteInput) -> WebhookDeletePayload:
        return await mutate(WebhookDeletePayload, webhooks.delete(ctx(info), to_dict(input)))

    @strawberry.mutation
    async def webhook_redeliver(self, info: Info, input: WebhookRedeliverInput) -> WebhookRedeliverPayload:
        return await mutate(WebhookRedeliverPayload, webhooks.redeliver(ctx(info), to_dict(input)),
                            delivery=WebhookDelivery.from_doc)
