"""GraphQL types and root fields of chat rooms (see `resolvers.chat` for the membership rules)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import chat
from schema.common import Connection, Info, UserError, ctx, mutate, query, to_dict
from schema.presence import live_values
from schema.users import User, user_ref


@strawberry.enum
class ChatRoomKind(Enum):
    DIRECT = "DIRECT"
    GROUP = "GROUP"
    CASE = "CASE"
    SWARM = "SWARM"


@strawberry.enum(description="MESSAGE (durable, resumable); TYPING and READ (ephemeral); MEMBERS.")
class ChatEventKind(Enum):
    MESSAGE = "MESSAGE"
    TYPING = "TYPING"
    READ = "READ"
    MEMBERS = "MEMBERS"


@strawberry.type
class ChatMessage:
    id: strawberry.ID
    body: str
    created_at: datetime
    seq: int
    author_id: strawberry.Private[str]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ChatMessage:
        return cls(id=strawberry.ID(doc["_id"]), body=doc["body"], created_at=doc["createdAt"],
                   seq=int(doc["seq"]), author_id=doc["authorId"])

    @strawberry.field
    async def author(self, info: Info) -> User:
        found = await user_ref(info, self.author_id)
        assert found is not None
        return found


@strawberry.type
class ChatRoom:
    id: strawberry.ID
    name: str | None
    kind: ChatRoomKind
    case_id: strawberry.ID | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ChatRoom:
        return cls(id=strawberry.ID(doc["_id"]), name=doc.get("name") or None, kind=ChatRoomKind(doc["kind"]),
                   case_id=doc.get("caseId"), created_at=doc["createdAt"], updated_at=doc["updatedAt"], doc=doc)

    @strawberry.field
    async def members(self, info: Info) -> list[User]:
        found = [await user_ref(info, uid) for uid in self.doc["members"]]
        return [u for u in found if u is not None]

    @strawberry.field(description="Messages of others after the caller's read mark.")
    async def unread_count(self, info: Info) -> int:
        return await query(chat.unread_count(ctx(info), self.doc))

    @strawberry.field
    async def last_message(self, info: Info) -> ChatMessage | None:
        last = self.doc.get("lastMessage")
        if not last:
            return None
        message = await ctx(info).loader("chat_messages").load(last["id"])
        return ChatMessage.from_doc(message) if message else None

    @strawberry.field(description="Newest first.")
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ChatMessage]:
        page = await query(chat.messages(ctx(info), self.doc, first, after))
        return Connection.of(page, ChatMessage.from_doc)


@strawberry.type
class ChatEvent:
    kind: ChatEventKind
    seq: int = strawberry.field(description="Of the last message delivered (ephemeral events carry it too)")
    cursor: str = strawberry.field(description="Resume `chatEvents(after:)` from here")
    at: datetime
    message: ChatMessage | None
    message_id: strawberry.ID | None = strawberry.field(description="For READ: read up to this message")
    uid: strawberry.Private[str | None]

    @strawberry.field(description="Who wrote, typed or read.")
    async def user(self, info: Info) -> User | None:
        return await user_ref(info, self.uid)

    @classmethod
    def of(cls, item: chat.Item) -> ChatEvent:
        return cls(kind=ChatEventKind(item.kind), seq=item.seq, cursor=item.cursor, at=item.at,
                   message=ChatMessage.from_doc(item.message) if item.message else None,
                   message_id=strawberry.ID(item.message_id) if item.message_id else None, uid=item.uid)


@strawberry.input
class ChatRoomCreateInput:
    member_ids: list[strawberry.ID]
    name: str | None = None
    case_id: strawberry.ID | None = None


@strawberry.type
class ChatRoomCreatePayload:
    errors: list[UserError]
    room: ChatRoom | None = None


@strawberry.input
class ChatMessageSendInput:
    room_id: strawberry.ID
    body: str


@strawberry.type
class ChatMessageSendPayload:
    errors: list[UserError]
    message: ChatMessage | None = None


@strawberry.input
class ChatTypingInput:
    room_id: strawberry.ID


@strawberry.type
class ChatTypingPayload:
    errors: list[UserError]
    room: ChatRoom | None = None


@strawberry.input
class ChatMarkReadInput:
    room_id: strawberry.ID
    message_id: strawberry.ID | None = None


@strawberry.type
class ChatMarkReadPayload:
    errors: list[UserError]
    room: ChatRoom | None = None


@strawberry.type
class Query:
    @strawberry.field(description="A room the caller is a member of (else null).")
    async def chat_room(self, info: Info, id: strawberry.ID) -> ChatRoom | None:
        doc = await query(chat.get(ctx(info), id))
        return ChatRoom.from_doc(doc) if doc else None

    @strawberry.field(description="The caller's rooms, most recently active first.")
    async def chat_rooms(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[ChatRoom]:
        return Connection.of(await query(chat.list_rooms(ctx(info), first, after)), ChatRoom.from_doc)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def chat_room_create(self, info: Info, input: ChatRoomCreateInput) -> ChatRoomCreatePayload:
        return await mutate(ChatRoomCreatePayload, chat.create(ctx(info), to_dict(input)), room=ChatRoom.from_doc)

    @strawberry.mutation
    async def chat_message_send(self, info: Info, input: ChatMessageSendInput) -> ChatMessageSendPayload:
        return await mutate(ChatMessageSendPayload, chat.send(ctx(info), to_dict(input)),
                            message=ChatMessage.from_doc)

    @strawberry.mutation(description="Tell the room the caller is typing (ephemeral, rate-limited).")
    async def chat_typing(self, info: Info, input: ChatTypingInput) -> ChatTypingPayload:
        return await mutate(ChatTypingPayload, chat.typing(ctx(info), to_dict(input)), room=ChatRoom.from_doc)

    @strawberry.mutation(description="Read up to a message (default: the last one); others get a READ event.")
    async def chat_mark_read(self, info: Info, input: ChatMarkReadInput) -> ChatMarkReadPayload:
        return await mutate(ChatMarkReadPayload, chat.mark_read(ctx(info), to_dict(input)), room=ChatRoom.from_doc)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Messages after `after` then live, plus typing and read receipts.")
    async def chat_events(
        self, info: Info, room_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[ChatEvent, None]:
        await query(chat.authorize(ctx(info), room_id))
        async for item in live_values(chat.follow(ctx(info).fresh(), room_id, after)):
            yield ChatEvent.of(item)
