"""GraphQL types and root fields of cases."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import cases
from schema.common import Connection, Info, UserError, ctx, mutate, query, to_dict
from schema.users import User, user_ref


@strawberry.enum
class CaseStatus(Enum):
    NEW = "NEW"
    OPEN = "OPEN"
    PENDING = "PENDING"
    SOLVED = "SOLVED"
    CLOSED = "CLOSED"


@strawberry.enum
class CaseChannel(Enum):
    FORUM = "FORUM"
    EMAIL = "EMAIL"
    CHAT = "CHAT"
    PHONE = "PHONE"
    WEB = "WEB"
    SELF_SERVICE = "SELF_SERVICE"


@strawberry.enum
class CasePriority(Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


@strawberry.type
class Case:
    id: strawberry.ID
    subject: str
    description: str
    status: CaseStatus
    priority: CasePriority
    channel: CaseChannel
    version: int
    tags: list[str]
    skills: list[str]
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Case:
        return cls(
            id=strawberry.ID(doc["_id"]), subject=doc["subject"], description=doc["description"],
            status=CaseStatus(doc["status"]), priority=CasePriority(doc["priority"]),
            channel=CaseChannel(doc["channel"]), version=doc["version"], tags=doc["tags"],
            skills=doc.get("skills", []), created_at=doc["createdAt"], updated_at=doc["updatedAt"],
            doc=doc,
        )

    @strawberry.field
    async def customer(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("customerId"))

    @strawberry.field
    async def assignee(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("assigneeId"))

    @strawberry.field
    async def followers(self, info: Info) -> list[User]:
        found = [await user_ref(info, uid) for uid in self.doc.get("followers", [])]
        return [u for u in found if u is not None]


@strawberry.input
class CaseFilter:
    status: list[CaseStatus] | None = None


@strawberry.input
class CaseCreateInput:
    subject: str
    description: str = ""
    priority: CasePriority | None = None
    tags: list[str] | None = None
    skills: list[str] | None = None
    channel: CaseChannel | None = None
    customer_id: strawberry.ID | None = None


@strawberry.type
class CaseCreatePayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.input
class CaseSetStatusInput:
    case_id: strawberry.ID
    status: CaseStatus
    expected_version: int | None = None


@strawberry.type
class CaseSetStatusPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def case(self, info: Info, id: strawberry.ID) -> Case | None:
        doc = await query(cases.get(ctx(info), id))
        return Case.from_doc(doc) if doc else None

    @strawberry.field
    async def cases(
        self, info: Info, filter: CaseFilter | None = None, first: int | None = None,
        after: str | None = None,
    ) -> Connection[Case]:
        page = await query(cases.list_cases(ctx(info), to_dict(filter) if filter else {}, first, after))
        return Connection.of(page, Case.from_doc)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def case_create(self, info: Info, input: CaseCreateInput) -> CaseCreatePayload:
        return await mutate(CaseCreatePayload, cases.create(ctx(info), to_dict(input)), case=Case.from_doc)

    @strawberry.mutation
    async def case_set_status(self, info: Info, input: CaseSetStatusInput) -> CaseSetStatusPayload:
        return await mutate(CaseSetStatusPayload, cases.set_status(ctx(info), to_dict(input)), case=Case.from_doc)
