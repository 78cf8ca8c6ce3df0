"""GraphQL types and root fields of case workspaces and attachments."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import attachments, workspace
from schema.common import Info, UserError, ctx, mutate, query, to_dict
from schema.users import User, user_ref


@strawberry.type(description="A file uploaded with `POST /attachments`; `url` downloads it (Bearer token).")
class Attachment:
    id: strawberry.ID
    filename: str
    content_type: str
    size: int
    url: str
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Attachment:
        return cls(
            id=strawberry.ID(doc["_id"]), filename=doc["filename"], content_type=doc["contentType"],
            size=doc["size"], url=attachments.url(doc["_id"]), created_at=doc["createdAt"],
        )


async def attachments_of(info: Info, ids: list[str]) -> list[Attachment]:
    return [Attachment.from_doc(d) for d in await attachments.load_many(ctx(info), ids)]


@strawberry.enum
class WorkspaceItemKind(Enum):
    DOCUMENT = "DOCUMENT"
    LOG = "LOG"
    STEP = "STEP"
    RESULT = "RESULT"


@strawberry.type
class WorkspaceItem:
    id: strawberry.ID
    case_id: strawberry.ID
    kind: WorkspaceItemKind
    title: str
    content: str
    position: int = strawberry.field(description="0-based place in the workspace (among what you can see).")
    version: int
    shared: bool = strawberry.field(description="Visible to the case's customers.")
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WorkspaceItem:
        return cls(
            id=strawberry.ID(doc["_id"]), case_id=strawberry.ID(doc["caseId"]),
            kind=WorkspaceItemKind(doc["kind"]), title=doc["title"], content=doc["content"],
            position=doc["position"], version=doc["version"], shared=bool(doc.get("shared")),
            created_at=doc["createdAt"], updated_at=doc["updatedAt"], doc=doc,
        )

    @strawberry.field(description="Same as `position`.")
    def order(self) -> int:
        return self.position

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("authorId"))

    @strawberry.field
    async def attachments(self, info: Info) -> list[Attachment]:
        return await attachments_of(info, self.doc.get("attachmentIds") or [])


@strawberry.input
class WorkspaceItemAddInput:
    case_id: strawberry.ID
    kind: WorkspaceItemKind
    title: str
    content: str = ""
    shared: bool = False
    attachment_ids: list[strawberry.ID] | None = None


@strawberry.type
class WorkspaceItemAddPayload:
    errors: list[UserError]
    item: WorkspaceItem | None = None


@strawberry.input
class WorkspaceItemUpdateInput:
    item_id: strawberry.ID
    expected_version: int
    content: str | None = None
    title: str | None = None
    shared: bool | None = None
    attachment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Replaces the item's attachments when given."
    )


@strawberry.type
class WorkspaceItemUpdatePayload:
    errors: list[UserError]
    item: WorkspaceItem | None = None


@strawberry.input
class WorkspaceItemMoveInput:
    item_id: strawberry.ID
    position: int


@strawberry.type
class WorkspaceItemMovePayload:
    errors: list[UserError]
    item: WorkspaceItem | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The workspace of a case in order (customers: shared items only).")
    async def workspace(self, info: Info, case_id: strawberry.ID) -> list[WorkspaceItem]:
        docs = await query(workspace.list_items(ctx(info), case_id))
        return [WorkspaceItem.from_doc(d) for d in docs]

    @strawberry.field(description="An attachment you uploaded or may read through a comment or workspace item.")
    async def attachment(self, info: Info, id: strawberry.ID) -> Attachment | None:
        doc = await query(attachments.get(ctx(info), id))
        return Attachment.from_doc(doc) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def workspace_item_add(self, info: Info, input: WorkspaceItemAddInput) -> WorkspaceItemAddPayload:
        return await mutate(WorkspaceItemAddPayload, workspace.add(ctx(info), to_dict(input)),
                            item=WorkspaceItem.from_doc)

    @strawberry.mutation
    async def workspace_item_update(self, info: Info, input: WorkspaceItemUpdateInput) -> WorkspaceItemUpdatePayload:
        return await mutate(WorkspaceItemUpdatePayload, workspace.update(ctx(info), to_dict(input)),
                            item=WorkspaceItem.from_doc)

    @strawberry.mutation
    async def workspace_item_move(self, info: Info, input: WorkspaceItemMoveInput) -> WorkspaceItemMovePayload:
        return await mutate(WorkspaceItemMovePayload, workspace.move(ctx(info), to_dict(input)),
                            item=WorkspaceItem.from_doc)
