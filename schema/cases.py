"""GraphQL types and root fields of cases."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers import cases
from schema.common import Connection, Info, UserError, ctx, enum_member, mutate, query, to_dict
from schema.users import User, user_ref

if TYPE_CHECKING:
    from schema.articles import Article
    from schema.knowledge import CaseArticleLink
    from schema.selfservice import SelfServiceSession
    from schema.threads import CommentConnection
    from schema.workspace import WorkspaceItem


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


@strawberry.type(description="A customer's issue and the people working it.")
class Case:
    id: strawberry.ID
    subject: str
    description: str
    status: CaseStatus
    priority: CasePriority
    channel: CaseChannel
    version: int = strawberry.field(description="Bumped on every edit; pass it as `expectedVersion`.")
    resolution: str = strawberry.field(description="How the issue was resolved (public).")
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Case:
        return cls(
            id=strawberry.ID(doc["_id"]), subject=doc["subject"], description=doc["description"],
            status=enum_member(CaseStatus, doc["status"]), priority=enum_member(CasePriority, doc["priority"]),
            channel=enum_member(CaseChannel, doc["channel"]), version=doc["version"],
            resolution=doc.get("resolution") or "", created_at=doc["createdAt"],
            updated_at=doc["updatedAt"], solved_at=doc.get("solvedAt"), doc=doc,
        )

    @strawberry.field(description="Internal labels (empty for customers).")
    def tags(self, info: Info) -> list[str]:
        return list(cases.internal(ctx(info), self.doc, "tags", []))

    @strawberry.field(description="Skills needed to work the case (empty for customers).")
    def skills(self, info: Info) -> list[str]:
        return list(cases.internal(ctx(info), self.doc, "skills", []))

    @strawberry.field(description="KCS symptom as captured by staff (null for customers).")
    def symptom(self, info: Info) -> str | None:
        value: str | None = cases.internal(ctx(info), self.doc, "symptom", None)
        return value

    @strawberry.field(description="KCS cause (internal; null for customers).")
    def cause(self, info: Info) -> str | None:
        value: str | None = cases.internal(ctx(info), self.doc, "cause", None)
        return value

    @strawberry.field(description="Due time from priority at creation: URGENT 4h, HIGH 8h, NORMAL 24h, LOW 72h "
                                  "(staff only).")
    def sla_due_at(self, info: Info) -> datetime | None:
        due: datetime | None = cases.internal(ctx(info), self.doc, "slaDueAt", None)
        return due

    @strawberry.field(description="Solved after, or still unsolved past, `slaDueAt` (staff only).")
    def sla_breached(self, info: Info) -> bool | None:
        return cases.sla_breached(self.doc) if ctx(info).me.is_staff else None

    @strawberry.field(description="Whether the viewer may call `caseUpdate` on this case.")
    def viewer_can_edit(self, info: Info) -> bool:
        return cases.can_edit(ctx(info), self.doc)

    @strawberry.field
    def viewer_follows(self, info: Info) -> bool:
        return ctx(info).me.sub in self.doc.get("followers", [])

    @strawberry.field
    async def customer(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("customerId"))

    @strawberry.field
    async def assignee(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("assigneeId"))

    @strawberry.field(description="Who is notified of changes (customers see no staff here).")
    async def followers(self, info: Info) -> list[User]:
        return [User.from_doc(d) for d in await cases.people(ctx(info), self.doc, "followers")]

    @strawberry.field(description="Customers and staff added to the case (customers see no staff here).")
    async def participants(self, info: Info) -> list[User]:
        return [User.from_doc(d) for d in await cases.people(ctx(info), self.doc, "participants")]

    # Comments and workspace items belong to their own domains (imported lazily: no cycles).
    @strawberry.field(description="The case's comment thread (customers see PUBLIC comments only).")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Annotated[CommentConnection, strawberry.lazy("schema.threads")]:
        from schema.threads import comment_connection

        return await comment_connection(info, str(self.id), first, after)

    @strawberry.field(description="Documents, logs, steps and results gathered while working the case.")
    async def workspace(self, info: Info) -> list[Annotated[WorkspaceItem, strawberry.lazy("schema.workspace")]]:
        from resolvers import workspace
        from schema.workspace import WorkspaceItem

        return [WorkspaceItem.from_doc(d) for d in await query(workspace.list_items(ctx(info), str(self.id)))]

    # Knowledge links and self-service belong to their own domains (imported lazily: no cycles).
    @strawberry.field(description="Articles linked to the case that the viewer may read (customers: published).")
    async def linked_articles(self, info: Info) -> list[Annotated[Article, strawberry.lazy("schema.articles")]]:
        from schema.knowledge import linked_articles

        return await linked_articles(info, self.doc)

    @strawberry.field(description="The case's article links with their relation, oldest first (readable articles).")
    async def article_links(
        self, info: Info
    ) -> list[Annotated[CaseArticleLink, strawberry.lazy("schema.knowledge")]]:
        from schema.knowledge import case_links

        return await case_links(info, self.doc)

    @strawberry.field(description="The self-service session this case was escalated from, if any.")
    async def self_service_session(
        self, info: Info
    ) -> Annotated[SelfServiceSession, strawberry.lazy("schema.selfservice")] | None:
        from schema.selfservice import case_session

        return await case_session(info, self.doc)


@strawberry.input(description="All given conditions must hold.")
class CaseFilter:
    status: list[CaseStatus] | None = None
    assignee: strawberry.ID | None = strawberry.field(default=None, description="A user id or `me`.")
    unassigned: bool | None = None
    customer: strawberry.ID | None = strawberry.field(default=None, description="A user id or `me`.")
    tag: str | None = None
    skill: str | None = None
    text: str | None = strawberry.field(default=None, description="Case-insensitive substring of the subject.")
    updated_since: datetime | None = None


@strawberry.input
class CaseCreateInput:
    subject: str
    description: str = ""
    priority: CasePriority | None = None
    tags: list[str] | None = None
    skills: list[str] | None = None
    channel: CaseChannel | None = None
    customer_id: strawberry.ID | None = None


@strawberry.input
class CaseUpdateInput:
    case_id: strawberry.ID
    subject: str | None = None
    description: str | None = None
    priority: CasePriority | None = None
    tags: list[str] | None = None
    skills: list[str] | None = None
    symptom: str | None = None
    cause: str | None = None
    resolution: str | None = None
    expected_version: int | None = None


@strawberry.input
class CaseAssignInput:
    case_id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(default=None, description="Null unassigns.")
    expected_version: int | None = None


@strawberry.input
class CaseSetStatusInput:
    case_id: strawberry.ID
    status: CaseStatus
    expected_version: int | None = None


@strawberry.input
class CaseAddParticipantInput:
    case_id: strawberry.ID
    user_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class CaseFollowInput:
    case_id: strawberry.ID


@strawberry.input
class CaseUnfollowInput:
    case_id: strawberry.ID


@strawberry.type
class CaseCreatePayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseUpdatePayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseAssignPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseSetStatusPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseAddParticipantPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseFollowPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class CaseUnfollowPayload:
    errors: list[UserError]
    case: Case | None = None


@strawberry.type
class Query:
    @strawberry.field(description="A case the viewer may read, else null.")
    async def case(self, info: Info, id: strawberry.ID) -> Case | None:
        doc = await query(cases.get(ctx(info), id))
        return Case.from_doc(doc) if doc else None

    @strawberry.field(description="Cases the viewer may read, most recently updated first.")
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
    async def case_update(self, info: Info, input: CaseUpdateInput) -> CaseUpdatePayload:
        return await mutate(CaseUpdatePayload, cases.update(ctx(info), to_dict(input)), case=Case.from_doc)

    @strawberry.mutation
    async def case_assign(self, info: Info, input: CaseAssignInput) -> CaseAssignPayload:
        return await mutate(CaseAssignPayload, cases.assign(ctx(info), to_dict(input)), case=Case.from_doc)

    @strawberry.mutation
    async def case_set_status(self, info: Info, input: CaseSetStatusInput) -> CaseSetStatusPayload:
        return await mutate(CaseSetStatusPayload, cases.set_status(ctx(info), to_dict(input)), case=Case.from_doc)

    @strawberry.mutation
    async def case_add_participant(self, info: Info, input: CaseAddParticipantInput) -> CaseAddParticipantPayload:
        return await mutate(
            CaseAddParticipantPayload, cases.add_participant(ctx(info), to_dict(input)), case=Case.from_doc
        )

    @strawberry.mutation
    async def case_follow(self, info: Info, input: CaseFollowInput) -> CaseFollowPayload:
        return await mutate(CaseFollowPayload, cases.follow(ctx(info), to_dict(input)), case=Case.from_doc)

    @strawberry.mutation
    async def case_unfollow(self, info: Info, input: CaseUnfollowInput) -> CaseUnfollowPayload:
        return await mutate(CaseUnfollowPayload, cases.unfollow(ctx(info), to_dict(input)), case=Case.from_doc)
