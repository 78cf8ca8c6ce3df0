"""GraphQL types and operations of self-service sessions (customers; see `resolvers.selfservice`)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import cases, selfservice
from resolvers.articles import core
from schema.articles import Article
from schema.cases import Case
from schema.common import JSON, Info, UserError, ctx, mutate, query, to_dict
from schema.users import User, user_ref


@strawberry.enum
class SelfServiceStepKind(Enum):
    SEARCH = "SEARCH"
    VIEW = "VIEW"
    HELPFUL = "HELPFUL"
    NOT_HELPFUL = "NOT_HELPFUL"


@strawberry.enum
class SelfServiceStatus(Enum):
    ACTIVE = "ACTIVE"
    RESOLVED = "RESOLVED"
    ESCALATED = "ESCALATED"


@strawberry.type(description="One thing the customer did in self-service.")
class SelfServiceStep:
    n: int
    kind: SelfServiceStepKind
    at: datetime
    query: str | None
    article_id: strawberry.ID | None
    article_title: str | None = strawberry.field(description="The title when the customer saw it.")
    helpful: bool | None
    text: str = strawberry.field(description="The step as one human-readable line.")

    @strawberry.field(description="The article, if the viewer may still read it.")
    async def article(self, info: Info) -> Article | None:
        doc = await query(core.get(ctx(info), self.article_id)) if self.article_id else None
        return Article.from_doc(doc) if doc else None

    @classmethod
    def from_doc(cls, step: dict[str, Any]) -> SelfServiceStep:
        kind = step["kind"]
        return cls(n=step["n"], kind=SelfServiceStepKind(kind), at=step["at"], query=step.get("query"),
                   article_id=step.get("articleId"), article_title=step.get("articleTitle"),
                   helpful=None if kind in ("SEARCH", "VIEW") else kind == "HELPFUL",
                   text=selfservice.describe(step))


@strawberry.type(description="A customer's self-service visit: searches, articles read and rated.")
class SelfServiceSession:
    id: strawberry.ID
    status: SelfServiceStatus
    channel: str
    context: JSON  # type: ignore[valid-type]
    steps: list[SelfServiceStep]
    created_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SelfServiceSession:
        return cls(
            id=strawberry.ID(doc["_id"]), status=SelfServiceStatus(doc["status"]), channel=doc["channel"],
            context=doc.get("context") or {}, steps=[SelfServiceStep.from_doc(s) for s in doc.get("steps", [])],
            created_at=doc["createdAt"], resolved_at=doc.get("resolvedAt"), escalated_at=doc.get("escalatedAt"),
            doc=doc,
        )

    @strawberry.field
    async def customer(self, info: Info) -> User | None:
        return await user_ref(info, self.doc["customerId"])

    @strawberry.field(description="The case it was escalated to, if the viewer may read it.")
    async def case(self, info: Info) -> Case | None:
        doc = await query(cases.get(ctx(info), self.doc["caseId"])) if self.doc.get("caseId") else None
        return Case.from_doc(doc) if doc else None


async def case_session(info: Info, case: dict[str, Any]) -> SelfServiceSession | None:
    doc = await query(selfservice.of_case(ctx(info), case))
    return SelfServiceSession.from_doc(doc) if doc else None


@strawberry.input
class SelfServiceStartInput:
    channel: str | None = strawberry.field(default=None, description="Where it happens (default WEB).")
    context: JSON | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="A small JSON object from the widget (page, product, locale…).")


@strawberry.input
class SelfServiceRecordInput:
    session_id: strawberry.ID
    kind: SelfServiceStepKind
    query: str | None = strawberry.field(default=None, description="The search text (SEARCH only).")
    article_id: strawberry.ID | None = strawberry.field(default=None, description="VIEW, HELPFUL, NOT_HELPFUL.")


@strawberry.input
class SelfServiceResolveInput:
    session_id: strawberry.ID


@strawberry.input
class SelfServiceEscalateInput:
    session_id: strawberry.ID
    subject: str | None = strawberry.field(default=None, description="Default: the first search.")
    description: str | None = strawberry.field(default=None, description="The session's story is appended.")


@strawberry.type
class SelfServiceStartPayload:
    errors: list[UserError]
    session: SelfServiceSession | None = None


@strawberry.type
class SelfServiceRecordPayload:
    errors: list[UserError]
    session: SelfServiceSession | None = None


@strawberry.type
class SelfServiceResolvePayload:
    errors: list[UserError]
    session: SelfServiceSession | None = None


@strawberry.type
class SelfServiceEscalatePayload:
    errors: list[UserError]
    case: Case | None = None
    session: SelfServiceSession | None = None


@strawberry.type
class Query:
    @strawberry.field(description="A session of the viewer (customers) or any of the tenant (staff), else null.")
    async def self_service_session(self, info: Info, id: strawberry.ID) -> SelfServiceSession | None:
        doc = await query(selfservice.get(ctx(info), id))
        return SelfServiceSession.from_doc(doc) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a self-service session (customers).")
    async def self_service_start(self, info: Info, input: SelfServiceStartInput) -> SelfServiceStartPayload:
        return await mutate(SelfServiceStartPayload, selfservice.start(ctx(info), to_dict(input)),
                            session=SelfServiceSession.from_doc)

    @strawberry.mutation(description="Record a search, a read, or a helpful / not-helpful answer.")
    async def self_service_record(self, info: Info, input: SelfServiceRecordInput) -> SelfServiceRecordPayload:
        return await mutate(SelfServiceRecordPayload, selfservice.record(ctx(info), to_dict(input)),
                            session=SelfServiceSession.from_doc)

    @strawberry.mutation(description="The customer's issue was solved by self-service (a confirmed deflection).")
    async def self_service_resolve(self, info: Info, input: SelfServiceResolveInput) -> SelfServiceResolvePayload:
        return await mutate(SelfServiceResolvePayload, selfservice.resolve(ctx(info), to_dict(input)),
                            session=SelfServiceSession.from_doc)

    @strawberry.mutation(description="Open a case carrying the whole session as its first timeline entries (once).")
    async def self_service_escalate(self, info: Info, input: SelfServiceEscalateInput) -> SelfServiceEscalatePayload:
        return await mutate(SelfServiceEscalatePayload, selfservice.escalate(ctx(info), to_dict(input)),
                            case=Case.from_doc, session=SelfServiceSession.from_doc)
