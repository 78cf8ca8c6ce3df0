"""GraphQL types and root fields of swarming and the expert finder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from resolvers import experts
from resolvers import swarm as swarms
from schema.common import Info, UserError, ctx, mutate, query, to_dict
from schema.users import Membership, User, user_ref


def expert_user(ranked: experts.Ranked) -> User:
    """The ranked user with `online` from presence."""
    return User.from_doc({**ranked.user, "online": ranked.online})


@strawberry.type(description="Why an expert ranks where they do (see `experts`).")
class ExpertMatch:
    user: User
    score: float
    skill_match: float
    status: str
    open_cases: int
    solved_cases: int
    articles: int

    @classmethod
    def of(cls, ranked: experts.Ranked) -> ExpertMatch:
        return cls(user=expert_user(ranked), score=ranked.score, skill_match=ranked.skill_match,
                   status=ranked.status, open_cases=ranked.load, solved_cases=ranked.solved,
                   articles=ranked.articles)


@strawberry.type
class SwarmMember(Membership):
    pass


@strawberry.type
class Swarm:
    id: strawberry.ID
    case_id: strawberry.ID
    status: str = strawberry.field(description="OPEN or CLOSED")
    skills: list[str]
    note: str
    outcome: str | None
    room_id: strawberry.ID | None
    created_at: datetime
    closed_at: datetime | None
    members: list[SwarmMember]
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Swarm:
        return cls(
            id=strawberry.ID(doc["_id"]), case_id=strawberry.ID(doc["caseId"]), status=doc["status"],
            skills=list(doc.get("skills") or []), note=doc.get("note") or "", outcome=doc.get("outcome"),
            room_id=doc.get("roomId"), created_at=doc["createdAt"], closed_at=doc.get("closedAt"),
            members=[SwarmMember.of(m) for m in doc.get("members") or []],
            doc=doc,
        )

    @strawberry.field
    async def requested_by(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("requestedBy"))

    @strawberry.field(description="The experts who were notified.")
    async def invited(self, info: Info) -> list[User]:
        found = [await user_ref(info, uid) for uid in self.doc.get("invited") or []]
        return [u for u in found if u is not None]


@strawberry.input
class SwarmRequestInput:
    case_id: strawberry.ID
    skills: list[str] | None = None
    note: str = ""
    max_experts: int | None = None


@strawberry.type
class SwarmRequestPayload:
    errors: list[UserError]
    swarm: Swarm | None = None


@strawberry.input
class SwarmJoinInput:
    swarm_id: strawberry.ID


@strawberry.type
class SwarmJoinPayload:
    errors: list[UserError]
    swarm: Swarm | None = None


@strawberry.input
class SwarmLeaveInput:
    swarm_id: strawberry.ID


@strawberry.type
class SwarmLeavePayload:
    errors: list[UserError]
    swarm: Swarm | None = None


@strawberry.input
class SwarmCloseInput:
    swarm_id: strawberry.ID
    outcome: str


@strawberry.type
class SwarmClosePayload:
    errors: list[UserError]
    swarm: Swarm | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Staff ranked for a skill (see ExpertMatch for the score); staff only.")
    async def experts(self, info: Info, skill: str | None = None, online_only: bool | None = None) -> list[User]:
        return [expert_user(r) for r in await query(experts.experts(ctx(info), skill, online_only))]

    @strawberry.field(description="`experts` with the parts of each score.")
    async def expert_matches(
        self, info: Info, skill: str | None = None, online_only: bool | None = None
    ) -> list[ExpertMatch]:
        return [ExpertMatch.of(r) for r in await query(experts.experts(ctx(info), skill, online_only))]

    @strawberry.field(description="The swarms of a case, newest first (staff only; customers get []).")
    async def swarms(self, info: Info, case_id: strawberry.ID) -> list[Swarm]:
        return [Swarm.from_doc(d) for d in await query(swarms.of_case(ctx(info), case_id))]

    @strawberry.field
    async def swarm(self, info: Info, id: strawberry.ID) -> Swarm | None:
        doc = await query(swarms.get(ctx(info), id))
        return Swarm.from_doc(doc) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Swarm a case: notify matching experts and open the case's swarm room.")
    async def swarm_request(self, info: Info, input: SwarmRequestInput) -> SwarmRequestPayload:
        return await mutate(SwarmRequestPayload, swarms.request(ctx(info), to_dict(input)), swarm=Swarm.from_doc)

    @strawberry.mutation
    async def swarm_join(self, info: Info, input: SwarmJoinInput) -> SwarmJoinPayload:
        return await mutate(SwarmJoinPayload, swarms.join(ctx(info), to_dict(input)), swarm=Swarm.from_doc)

    @strawberry.mutation
    async def swarm_leave(self, info: Info, input: SwarmLeaveInput) -> SwarmLeavePayload:
        return await mutate(SwarmLeavePayload, swarms.leave(ctx(info), to_dict(input)), swarm=Swarm.from_doc)

    @strawberry.mutation
    async def swarm_close(self, info: Info, input: SwarmCloseInput) -> SwarmClosePayload:
        return await mutate(SwarmClosePayload, swarms.close(ctx(info), to_dict(input)), swarm=Swarm.from_doc)
