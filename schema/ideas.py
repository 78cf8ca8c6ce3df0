"""GraphQL types and root fields of ideas (feature requests); reads also serve anonymous portals."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import ideas
from resolvers.context import Context
from schema.common import Connection, Edge, Info, PageInfo, UserError, ctx, to_dict
from schema.forum import read, run, user_of, view_of
from schema.users import User


@strawberry.enum
class IdeaStatus(Enum):
    NEW = "NEW"
    UNDER_REVIEW = "UNDER_REVIEW"
    PLANNED = "PLANNED"
    IN_PROGRESS = "IN_PROGRESS"
    SHIPPED = "SHIPPED"
    DECLINED = "DECLINED"


@strawberry.type(description="Viability assessment (staff only).")
class IdeaAssessment:
    effort: int | None = strawberry.field(description="1 (small) to 5 (huge).")
    impact: int | None = strawberry.field(description="1 (minor) to 5 (major).")
    notes: str
    assessed_at: datetime
    assessed_by: strawberry.Private[str]
    view: strawberry.Private[Context]

    @strawberry.field
    async def assessor(self) -> User | None:
        return await user_of(self.view, self.assessed_by)


@strawberry.type(description="A feature request; public within its tenant (anonymous: X-Hub-Tenant).")
class Idea:
    id: strawberry.ID
    title: str
    body: str = strawberry.field(description="Plain text, stored verbatim: clients must escape it.")
    status: IdeaStatus
    votes: int
    status_note: str = strawberry.field(description="The public note of the latest status change.")
    status_changed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]
    view: strawberry.Private[Context]

    @classmethod
    def of(cls, view: Context, doc: dict[str, Any]) -> Idea:
        return cls(
            id=strawberry.ID(doc["_id"]), title=doc["title"], body=doc["body"], status=IdeaStatus(doc["status"]),
            votes=doc.get("votes", 0), status_note=doc.get("statusNote") or "",
            status_changed_at=doc.get("statusChangedAt"), created_at=doc["createdAt"], updated_at=doc["updatedAt"],
            doc=doc, view=view,
        )

    @strawberry.field(description="Cases linked to the idea: all for staff, your own for customers.")
    async def case_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(i) for i in await ideas.case_ids(self.view, self.doc)]

    @strawberry.field(description="Whether the caller voted for it (false for anonymous readers).")
    async def viewer_voted(self) -> bool:
        return bool(await ideas.viewer_voted(self.view, self.doc["_id"]))

    @strawberry.field
    async def author(self) -> User | None:
        return await user_of(self.view, self.doc["submitterId"])

    @strawberry.field(description="Staff only (null for everybody else).")
    def assessment(self) -> IdeaAssessment | None:
        found = ideas.assessment(self.view, self.doc)
        if not found:
            return None
        return IdeaAssessment(effort=found.get("effort"), impact=found.get("impact"), notes=found.get("notes") or "",
                              assessed_at=found["assessedAt"], assessed_by=found["assessedBy"], view=self.view)


@strawberry.input(description="All given conditions must hold.")
class IdeaFilter:
    status: list[IdeaStatus] | None = None
    text: str | None = strawberry.field(default=None, description="Ideas containing every (significant) word.")


@strawberry.input
class IdeaSubmitInput:
    title: str
    body: str
    case_id: strawberry.ID | None = strawberry.field(default=None, description="The case that raised it.")


@strawberry.input
class IdeaVoteInput:
    idea_id: strawberry.ID


@strawberry.input
class IdeaUnvoteInput:
    idea_id: strawberry.ID


@strawberry.input
class IdeaSetStatusInput:
    idea_id: strawberry.ID
    status: IdeaStatus
    note: str = strawberry.field(default="", description="Public: every submitter, voter and linked customer "
                                                         "is notified.")


@strawberry.input
class IdeaLinkCaseInput:
    idea_id: strawberry.ID
    case_id: strawberry.ID


@strawberry.input
class IdeaAssessInput:
    idea_id: strawberry.ID
    effort: int | None = None
    impact: int | None = None
    notes: str | None = None


@strawberry.type
class IdeaSubmitPayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class IdeaVotePayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class IdeaUnvotePayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class IdeaSetStatusPayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class IdeaLinkCasePayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class IdeaAssessPayload:
    errors: list[UserError]
    idea: Idea | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Ideas, most voted first (anonymous: X-Hub-Tenant).")
    async def ideas(
        self, info: Info, filter: IdeaFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Idea]:
        view = view_of(info)
        page = await read(ideas.list_ideas(view, to_dict(filter) if filter else {}, first, after))
        return Connection(
            edges=[Edge(cursor=c, node=Idea.of(view, d)) for c, d in zip(page.cursors, page.items, strict=True)],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        )

    @strawberry.field(description="An idea (anonymous: X-Hub-Tenant), else null.")
    async def idea(self, info: Info, id: strawberry.ID) -> Idea | None:
        view = view_of(info)
        doc = await read(ideas.get(view, id))
        return Idea.of(view, doc) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Submit an idea (customers or staff; with caseId, linked to that case).")
    async def idea_submit(self, info: Info, input: IdeaSubmitInput) -> IdeaSubmitPayload:
        return await run(info, IdeaSubmitPayload, ideas.submit(ctx(info), to_dict(input)), idea=Idea.of)

    @strawberry.mutation(description="Vote once; voting again changes nothing. Closed ideas refuse votes.")
    async def idea_vote(self, info: Info, input: IdeaVoteInput) -> IdeaVotePayload:
        return await run(info, IdeaVotePayload, ideas.vote(ctx(info), to_dict(input)), idea=Idea.of)

    @strawberry.mutation(description="Withdraw your vote.")
    async def idea_unvote(self, info: Info, input: IdeaUnvoteInput) -> IdeaUnvotePayload:
        return await run(info, IdeaUnvotePayload, ideas.unvote(ctx(info), to_dict(input)), idea=Idea.of)

    @strawberry.mutation(description="Staff: set the status with a public note (notifies everybody concerned).")
    async def idea_set_status(self, info: Info, input: IdeaSetStatusInput) -> IdeaSetStatusPayload:
        return await run(info, IdeaSetStatusPayload, ideas.set_status(ctx(info), to_dict(input)), idea=Idea.of)

    @strawberry.mutation(description="Link a case that raised the idea (staff, or the case's customer).")
    async def idea_link_case(self, info: Info, input: IdeaLinkCaseInput) -> IdeaLinkCasePayload:
        return await run(info, IdeaLinkCasePayload, ideas.link_case(ctx(info), to_dict(input)), idea=Idea.of)

    @strawberry.mutation(description="Staff: record the viability assessment (internal).")
    async def idea_assess(self, info: Info, input: IdeaAssessInput) -> IdeaAssessPayload:
        return await run(info, IdeaAssessPayload, ideas.assess(ctx(info), to_dict(input)), idea=Idea.of)
