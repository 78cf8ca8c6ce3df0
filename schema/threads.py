"""GraphQL types and root fields of comment threads (on cases, articles, forum questions, ideas)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from resolvers import threads, users
from resolvers.pagination import Page
from schema.activity import Visibility
from schema.common import Info, PageInfo, UserError, ctx, enum_member, mutate, query, selects, to_dict
from schema.users import User, user_now, user_ref
from schema.workspace import Attachment, attachments_of


@strawberry.type(description="A replaced version of a comment: the text `editor` replaced at `editedAt`.")
class CommentEdit:
    body: str
    edited_at: datetime
    editor_id: strawberry.Private[str]

    @strawberry.field
    async def editor(self, info: Info) -> User | None:
        return await user_ref(info, self.editor_id)


@strawberry.type
class Comment:
    id: strawberry.ID
    subject_id: strawberry.ID
    body: str = strawberry.field(description="Plain text (clients escape it); empty once deleted.")
    visibility: Visibility
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    version: int
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Comment:
        return cls(
            id=strawberry.ID(doc["_id"]), subject_id=strawberry.ID(doc["subjectId"]), body=doc["body"],
            visibility=enum_member(Visibility, doc["visibility"]),
            created_at=doc["createdAt"],
            edited_at=doc.get("editedAt"), deleted=bool(doc.get("deleted")), version=doc.get("version", 1),
            doc=doc,
        )

    @strawberry.field(graphql_type=User | None)
    def author(self, info: Info) -> User | Awaitable[User | None] | None:
        # sync when `comment_connection` prefetched the page's authors (else an awaitable)
        return user_now(info, self.doc["authorId"])

    @strawberry.field
    async def mentions(self, info: Info) -> list[User]:
        found = [await user_ref(info, uid) for uid in self.doc.get("mentions") or []]
        return [u for u in found if u is not None]

    @strawberry.field(description="Edit history, oldest first: visible to staff and to the author, else empty.")
    def edits(self, info: Info) -> list[CommentEdit]:
        if not threads.may_see_edits(ctx(info), self.doc):
            return []
        return [CommentEdit(body=e["body"], edited_at=e["editedAt"], editor_id=e["editorId"])
                for e in self.doc.get("edits") or []]

    @strawberry.field
    async def attachments(self, info: Info) -> list[Attachment]:
        return await attachments_of(info, self.doc.get("attachmentIds") or [])


@strawberry.type
class CommentEdge:
    cursor: str
    node: Comment


Total = int | Callable[[], Awaitable[int]] | None


@strawberry.type
class CommentConnection:
    edges: list[CommentEdge]
    page_info: PageInfo
    total: strawberry.Private[Total]
    subject_id: strawberry.Private[str]

    @strawberry.field(description="Comments of the thread you can see (customers: public ones only).")
    async def total_count(self, info: Info) -> int:
        if isinstance(self.total, int):
            return self.total
        if self.total is not None:
            return await self.total()
        return await query(threads.count_comments(ctx(info), self.subject_id)) if self.subject_id else 0

    @classmethod
    def of(cls, page: Page, total: Total = None) -> CommentConnection:
        """A connection over a page of `threads.list_comments`.

        `total` is the audience-filtered count, or a function computing it; by default it is
        counted (audience-filtered) only when `totalCount` is asked for.
        """
        return cls(
            edges=[CommentEdge(cursor=c, node=Comment.from_doc(d))
                   for c, d in zip(page.cursors, page.items, strict=True)],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            total=total, subject_id=getattr(page, "subject_id", ""),
        )


async def comment_connection(info: Info, subject_id: str, first: int | None, after: str | None) -> CommentConnection:
    """The thread of `subject_id` as the caller sees it (for `Case.comments`, `Article.comments`…)."""
    page = await query(threads.list_comments(ctx(info), subject_id, first, after))
    if page.items and selects(info, "edges", "node", "author"):
        await users.prefetch(ctx(info), [d.get("authorId") for d in page.items])  # one batch, no await per comment
    return CommentConnection.of(page)


@strawberry.type(description="The comment thread of a subject; `id` is the subject's id.")
class Thread:
    id: strawberry.ID
    subject_id: strawberry.ID

    @strawberry.field
    async def comments(self, info: Info, first: int | None = None, after: str | None = None) -> CommentConnection:
        return await comment_connection(info, self.subject_id, first, after)


@strawberry.input
class CommentAddInput:
    subject_id: strawberry.ID
    body: str
    visibility: Visibility = Visibility.PUBLIC
    attachment_ids: list[strawberry.ID] | None = None


@strawberry.type
class CommentAddPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class CommentEditInput:
    comment_id: strawberry.ID
    body: str


@strawberry.type
class CommentEditPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class CommentDeleteInput:
    comment_id: strawberry.ID


@strawberry.type
class CommentDeletePayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class CommentSetVisibilityInput:
    comment_id: strawberry.ID
    visibility: Visibility


@strawberry.type
class CommentSetVisibilityPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The comment thread of a subject (case, article, forum question, idea).")
    async def thread(self, info: Info, id: strawberry.ID) -> Thread | None:
        doc = await query(threads.get_thread(ctx(info), id))
        return Thread(id=strawberry.ID(doc["_id"]), subject_id=strawberry.ID(doc["_id"])) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def comment_add(self, info: Info, input: CommentAddInput) -> CommentAddPayload:
        return await mutate(CommentAddPayload, threads.add(ctx(info), to_dict(input)), comment=Comment.from_doc)

    @strawberry.mutation
    async def comment_edit(self, info: Info, input: CommentEditInput) -> CommentEditPayload:
        return await mutate(CommentEditPayload, threads.edit(ctx(info), to_dict(input)), comment=Comment.from_doc)

    @strawberry.mutation
    async def comment_delete(self, info: Info, input: CommentDeleteInput) -> CommentDeletePayload:
        return await mutate(CommentDeletePayload, threads.delete(ctx(info), to_dict(input)), comment=Comment.from_doc)

    @strawberry.mutation(description="Staff: make a comment PUBLIC or INTERNAL.")
    async def comment_set_visibility(
        self, info: Info, input: CommentSetVisibilityInput
    ) -> CommentSetVisibilityPayload:
        return await mutate(CommentSetVisibilityPayload, threads.set_visibility(ctx(info), to_dict(input)),
                            comment=Comment.from_doc)
