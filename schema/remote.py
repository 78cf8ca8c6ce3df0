"""GraphQL types and root fields of remote-support sessions and their signalling relay."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import remote
from schema.common import JSON, Info, UserError, ctx, mutate, query, to_dict
from schema.presence import live_values
from schema.users import Membership, User, user_ref


@strawberry.enum
class RemoteSignalKind(Enum):
    OFFER = "OFFER"
    ANSWER = "ANSWER"
    ICE = "ICE"
    CONTROL = "CONTROL"


@strawberry.type
class RemoteParticipant(Membership):
    pass


@strawberry.type
class RemoteSession:
    id: strawberry.ID
    case_id: strawberry.ID
    status: str = strawberry.field(description="ACTIVE or ENDED")
    created_at: datetime
    ended_at: datetime | None
    participants: list[RemoteParticipant]
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RemoteSession:
        return cls(
            id=strawberry.ID(doc["_id"]), case_id=strawberry.ID(doc["caseId"]), status=doc["status"],
            created_at=doc["createdAt"], ended_at=doc.get("endedAt"),
            participants=[RemoteParticipant.of(p) for p in doc["participants"]],
            doc=doc,
        )

    @strawberry.field
    async def host(self, info: Info) -> User | None:
        return await user_ref(info, self.doc["hostId"])

    @strawberry.field
    async def invitees(self, info: Info) -> list[User]:
        found = [await user_ref(info, uid) for uid in self.doc["invitees"]]
        return [u for u in found if u is not None]


@strawberry.type
class RemoteSignal:
    id: strawberry.ID
    session_id: strawberry.ID
    kind: RemoteSignalKind
    payload: JSON  # type: ignore[valid-type]
    sent_at: datetime
    from_id: strawberry.Private[str]
    to_id: strawberry.Private[str]

    @classmethod
    def of(cls, body: dict[str, Any]) -> RemoteSignal:
        return cls(id=strawberry.ID(body["id"]), session_id=strawberry.ID(body["sessionId"]),
                   kind=RemoteSignalKind(body["kind"]), payload=body.get("payload"),
                   sent_at=datetime.fromisoformat(body["sentAt"]), from_id=body["from"], to_id=body["to"])

    @strawberry.field(name="from")
    async def sender(self, info: Info) -> User:
        found = await user_ref(info, self.from_id)
        assert found is not None
        return found

    @strawberry.field
    async def to(self, info: Info) -> User:
        found = await user_ref(info, self.to_id)
        assert found is not None
        return found


@strawberry.input
class RemoteSessionCreateInput:
    case_id: strawberry.ID
    invitees: list[strawberry.ID]


@strawberry.type
class RemoteSessionCreatePayload:
    errors: list[UserError]
    session: RemoteSession | None = None


@strawberry.input
class RemoteSessionJoinInput:
    session_id: strawberry.ID


@strawberry.type
class RemoteSessionJoinPayload:
    errors: list[UserError]
    session: RemoteSession | None = None


@strawberry.input
class RemoteSessionLeaveInput:
    session_id: strawberry.ID


@strawberry.type
class RemoteSessionLeavePayload:
    errors: list[UserError]
    session: RemoteSession | None = None


@strawberry.input
class RemoteSessionEndInput:
    session_id: strawberry.ID


@strawberry.type
class RemoteSessionEndPayload:
    errors: list[UserError]
    session: RemoteSession | None = None


@strawberry.input
class RemoteSignalSendInput:
    session_id: strawberry.ID
    to: strawberry.ID
    kind: RemoteSignalKind
    payload: JSON  # type: ignore[valid-type]


@strawberry.type
class RemoteSignalSendPayload:
    errors: list[UserError]
    signal: RemoteSignal | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def remote_session(self, info: Info, id: strawberry.ID) -> RemoteSession | None:
        doc = await query(remote.get(ctx(info), id))
        return RemoteSession.from_doc(doc) if doc else None

    @strawberry.field(description="Sessions of a case, newest first (customers: those they are invited to).")
    async def remote_sessions(self, info: Info, case_id: strawberry.ID) -> list[RemoteSession]:
        return [RemoteSession.from_doc(d) for d in await query(remote.of_case(ctx(info), case_id))]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def remote_session_create(self, info: Info, input: RemoteSessionCreateInput) -> RemoteSessionCreatePayload:
        return await mutate(RemoteSessionCreatePayload, remote.create(ctx(info), to_dict(input)),
                            session=RemoteSession.from_doc)

    @strawberry.mutation
    async def remote_session_join(self, info: Info, input: RemoteSessionJoinInput) -> RemoteSessionJoinPayload:
        return await mutate(RemoteSessionJoinPayload, remote.join(ctx(info), to_dict(input)),
                            session=RemoteSession.from_doc)

    @strawberry.mutation
    async def remote_session_leave(self, info: Info, input: RemoteSessionLeaveInput) -> RemoteSessionLeavePayload:
        return await mutate(RemoteSessionLeavePayload, remote.leave(ctx(info), to_dict(input)),
                            session=RemoteSession.from_doc)

    @strawberry.mutation
    async def remote_session_end(self, info: Info, input: RemoteSessionEndInput) -> RemoteSessionEndPayload:
        return await mutate(RemoteSessionEndPayload, remote.end(ctx(info), to_dict(input)),
                            session=RemoteSession.from_doc)

    @strawberry.mutation(description="Relay a WebRTC signal to one joined participant (nothing is stored).")
    async def remote_signal_send(self, info: Info, input: RemoteSignalSendInput) -> RemoteSignalSendPayload:
        return await mutate(RemoteSignalSendPayload, remote.send_signal(ctx(info), to_dict(input)),
                            signal=RemoteSignal.of)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Signals addressed to the caller in a session they joined.")
    async def remote_signals(self, info: Info, session_id: strawberry.ID) -> AsyncGenerator[RemoteSignal, None]:
        await query(remote.authorize_signals(ctx(info), session_id))
        async for body in live_values(remote.signals(ctx(info).fresh(), session_id)):
            yield RemoteSignal.of(body)
