"""GraphQL types and root fields of the forum (see docs/forum.md).

Forum reads also serve anonymous front-ends (no token, `X-Hub-Tenant` header): objects keep the
context they were read under (`view`) and resolve their nested fields with it, so an anonymous
reader never borrows anyone's identity and never sees what only staff or the asker may see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry

from hub.errors import ErrorCode, HubError
from resolvers import articles, public, users
from resolvers.context import Context
from resolvers.forum import core, knowledge, posting
from schema.articles.types import Article, ArticleAudience
from schema.cases import Case
from schema.common import Connection, Edge, Info, PageInfo, UserError, ctx, graphql_error, to_dict
from schema.users import User

P = TypeVar("P")


def view_of(info: Info) -> Context:
    """The context public reads run under (`UNAUTHENTICATED` without a token or `X-Hub-Tenant`)."""
    try:
        return public.view(ctx(info))
    except HubError as exc:
        raise graphql_error(exc) from exc


async def user_of(view: Context, uid: str | None) -> User | None:
    if not uid:
        return None
    return User.from_doc(await users.get(view, uid) or users.placeholder(uid))


async def read(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except HubError as exc:
        raise graphql_error(exc) from exc


async def run(
    info: Info, payload: Callable[..., P], call: Awaitable[dict[str, Any]], **convert: Callable[[Context, Any], Any]
) -> P:
    """Like `schema.common.mutate`, converting with the context the result is read under (the
    result's `view`, else the request's)."""
    try:
        result = await call
    except HubError as exc:
        if exc.code is ErrorCode.INTERNAL:
            raise
        return payload(errors=[UserError.of(exc)])
    view = result.pop("view", None) or ctx(info)
    values = {k: (convert[k](view, v) if k in convert and v is not None else v) for k, v in result.items()}
    return payload(errors=[], **values)


@strawberry.enum
class ForumThreadStatus(Enum):
    OPEN = "OPEN"
    ANSWERED = "ANSWERED"
    RESOLVED = "RESOLVED"


@strawberry.type(description="A published answer (drafts are never answers).")
class ForumAnswer:
    id: strawberry.ID
    thread_id: strawberry.ID
    body: str = strawberry.field(description="Plain text, stored verbatim: clients must escape it.")
    accepted: bool
    from_draft: bool
    by_staff: bool
    created_at: datetime
    doc: strawberry.Private[dict[str, Any]]
    view: strawberry.Private[Context]

    @classmethod
    def of(cls, view: Context, doc: dict[str, Any]) -> ForumAnswer:
        return cls(
            id=strawberry.ID(doc["_id"]), thread_id=strawberry.ID(doc["threadId"]), body=doc["body"],
            accepted=bool(doc.get("accepted")), from_draft=bool(doc.get("fromDraft")),
            by_staff=bool(doc.get("staff")), created_at=doc["createdAt"], doc=doc, view=view,
        )

    @strawberry.field
    async def author(self) -> User | None:
        return await user_of(self.view, self.doc["authorId"])

    @strawberry.field(description="Who wrote it, draft co-authors included (staff only; else empty).")
    async def contributors(self) -> list[User]:
        if public.is_anonymous(self.view) or not self.view.me.is_staff:
            return []
        found = [await user_of(self.view, uid) for uid in self.doc.get("contributors") or []]
        return [u for u in found if u is not None]


@strawberry.type(description="The staff's collaborative draft answer of a thread (staff only).")
class ForumDraft:
    id: strawberry.ID
    thread_id: strawberry.ID
    body: str
    version: int = strawberry.field(description="Pass it as `expectedVersion` to the next save.")
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]
    view: strawberry.Private[Context]

    @classmethod
    def of(cls, view: Context, doc: dict[str, Any]) -> ForumDraft:
        return cls(id=strawberry.ID(doc["_id"]), thread_id=strawberry.ID(doc["threadId"]), body=doc["body"],
                   version=doc["version"], updated_at=doc["updatedAt"], doc=doc, view=view)

    @strawberry.field
    async def contributors(self) -> list[User]:
        found = [await user_of(self.view, uid) for uid in self.doc.get("contributors") or []]
        return [u for u in found if u is not None]


@strawberry.type(description="Acknowledgement of a posted question.")
class ForumReceipt:
    received_at: datetime
    reference: str = strawberry.field(description="Quote it to support (the linked case's id).")
    thread_id: strawberry.ID


@strawberry.type(description="A public forum question; anonymous readers see it too (X-Hub-Tenant).")
class ForumThread:
    id: strawberry.ID
    title: str
    body: str = strawberry.field(description="Plain text, stored verbatim: clients must escape it.")
    status: ForumThreadStatus
    tags: list[str]
    answer_count: int
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]
    view: strawberry.Private[Context]

    @classmethod
    def of(cls, view: Context, doc: dict[str, Any]) -> ForumThread:
        return cls(
            id=strawberry.ID(doc["_id"]), title=doc["title"], body=doc["body"],
            status=ForumThreadStatus(doc["status"]), tags=list(doc.get("tags") or []),
            answer_count=doc.get("answerCount", 0), created_at=doc["createdAt"], updated_at=doc["updatedAt"],
            doc=doc, view=view,
        )

    @strawberry.field(description="The linked case: staff and the asker only (null for everybody else).")
    def case_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.doc["caseId"]) if core.may_see_case(self.view, self.doc) else None

    @strawberry.field(description="Who asked (anonymous posters appear under the name they gave).")
    async def author(self) -> User | None:
        return await user_of(self.view, self.doc["askerId"])

    @strawberry.field(description="Published answers, oldest first.")
    async def answers(self, first: int | None = None) -> list[ForumAnswer]:
        docs = await read(core.answers(self.view, self.doc["_id"], first))
        return [ForumAnswer.of(self.view, d) for d in docs]

    @strawberry.field
    async def accepted_answer(self) -> ForumAnswer | None:
        doc = await core.answer(self.view, self.doc.get("acceptedAnswerId"))
        return ForumAnswer.of(self.view, doc) if doc else None

    @strawberry.field(description="The article the accepted answer became (null unless you may read it).")
    async def promoted_article(self) -> Article | None:
        article_id = self.doc.get("promotedArticleId")
        doc = await articles.get(self.view, article_id) if article_id else None
        return Article.from_doc(doc) if doc else None

    @strawberry.field(description="The staff's draft answer (staff only; null for everybody else).")
    async def draft(self) -> ForumDraft | None:
        doc = await core.draft(self.view, self.doc["_id"])
        return ForumDraft.of(self.view, doc) if doc else None

    @strawberry.field(description="Staff whose skills match the tags and words of the question, best first "
                                  "(staff only; empty for everybody else).")
    async def suggested_experts(self, first: int | None = None) -> list[User]:
        docs = await knowledge.suggested_experts(self.view, self.doc, first)
        return [User.from_doc(d) for d in docs]


def thread_connection(view: Context, page: Any) -> Connection[ForumThread]:
    return Connection(
        edges=[Edge(cursor=c, node=ForumThread.of(view, d)) for c, d in zip(page.cursors, page.items, strict=True)],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
    )


@strawberry.input(description="All given conditions must hold.")
class ForumFilter:
    status: list[ForumThreadStatus] | None = None
    tag: str | None = None
    text: str | None = strawberry.field(default=None, description="Threads containing every (significant) word.")
    mine: bool | None = strawberry.field(default=None, description="Only the caller's own questions.")


@strawberry.input
class ForumQuestionPostInput:
    title: str
    body: str
    tags: list[str] | None = None
    email: str | None = strawberry.field(default=None, description="Required without a token (anonymous).")
    name: str | None = strawberry.field(default=None, description="Display name of an anonymous poster.")


@strawberry.input
class ForumDraftSaveInput:
    thread_id: strawberry.ID
    body: str
    expected_version: int | None = strawberry.field(default=None, description="0 to create the draft.")


@strawberry.input
class ForumAnswerPostInput:
    thread_id: strawberry.ID
    body: str | None = None
    from_draft: bool = strawberry.field(default=False, description="Staff: publish the thread's draft.")
    expected_version: int | None = strawberry.field(default=None, description="The draft's, with fromDraft.")


@strawberry.input
class ForumAnswerAcceptInput:
    answer_id: strawberry.ID


@strawberry.input
class ForumAnswerPromoteInput:
    answer_id: strawberry.ID
    force: bool = strawberry.field(default=False, description="Promote even if a similar article exists.")
    title: str | None = strawberry.field(default=None, description="Defaults to the question's title.")
    audience: ArticleAudience | None = None


@strawberry.type
class ForumQuestionPostPayload:
    errors: list[UserError]
    thread: ForumThread | None = None
    case: Case | None = None
    receipt: ForumReceipt | None = None


@strawberry.type
class ForumDraftSavePayload:
    errors: list[UserError]
    draft: ForumDraft | None = None
    thread: ForumThread | None = None


@strawberry.type
class ForumAnswerPostPayload:
    errors: list[UserError]
    answer: ForumAnswer | None = None
    thread: ForumThread | None = None


@strawberry.type
class ForumAnswerAcceptPayload:
    errors: list[UserError]
    answer: ForumAnswer | None = None
    thread: ForumThread | None = None


@strawberry.type
class ForumAnswerPromotePayload:
    errors: list[UserError]
    article: Article | None = None
    thread: ForumThread | None = None


def _receipt(view: Context, doc: dict[str, Any]) -> ForumReceipt:
    return ForumReceipt(received_at=doc["received_at"], reference=doc["reference"],
                        thread_id=strawberry.ID(doc["thread_id"]))


def _case(view: Context, doc: dict[str, Any]) -> Case:
    return Case.from_doc(doc)


def _article(view: Context, doc: dict[str, Any]) -> Article:
    return Article.from_doc(doc)


@strawberry.type
class Query:
    @strawberry.field(description="Forum threads, most recently active first (anonymous: X-Hub-Tenant).")
    async def forum_threads(
        self, info: Info, filter: ForumFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[ForumThread]:
        view = view_of(info)
        page = await read(core.list_threads(view, to_dict(filter) if filter else {}, first, after))
        return thread_connection(view, page)

    @strawberry.field(description="A forum thread (anonymous: X-Hub-Tenant), else null.")
    async def forum_thread(self, info: Info, id: strawberry.ID) -> ForumThread | None:
        view = view_of(info)
        doc = await read(core.get(view, id))
        return ForumThread.of(view, doc) if doc else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Ask a question (customer token, or anonymous with email + X-Hub-Tenant).")
    async def forum_question_post(self, info: Info, input: ForumQuestionPostInput) -> ForumQuestionPostPayload:
        view_of(info)  # neither a token nor a tenant hint: UNAUTHENTICATED (401)
        return await run(info, ForumQuestionPostPayload, posting.post_question(ctx(info), to_dict(input)),
                         thread=ForumThread.of, case=_case, receipt=_receipt)

    @strawberry.mutation(description="Staff: create or update the thread's draft answer.")
    async def forum_draft_save(self, info: Info, input: ForumDraftSaveInput) -> ForumDraftSavePayload:
        return await run(info, ForumDraftSavePayload, knowledge.save_draft(ctx(info), to_dict(input)),
                         draft=ForumDraft.of, thread=ForumThread.of)

    @strawberry.mutation(description="Publish an answer (staff, or signed-in customers answering the community).")
    async def forum_answer_post(self, info: Info, input: ForumAnswerPostInput) -> ForumAnswerPostPayload:
        return await run(info, ForumAnswerPostPayload, posting.post_answer(ctx(info), to_dict(input)),
                         answer=ForumAnswer.of, thread=ForumThread.of)

    @strawberry.mutation(description="The asker or staff accept an answer; the linked case is solved.")
    async def forum_answer_accept(self, info: Info, input: ForumAnswerAcceptInput) -> ForumAnswerAcceptPayload:
        return await run(info, ForumAnswerAcceptPayload, posting.accept(ctx(info), to_dict(input)),
                         answer=ForumAnswer.of, thread=ForumThread.of)

    @strawberry.mutation(description="Staff (KCS licence): turn the accepted answer into an article.")
    async def forum_answer_promote(self, info: Info, input: ForumAnswerPromoteInput) -> ForumAnswerPromotePayload:
        return await run(info, ForumAnswerPromotePayload, knowledge.promote(ctx(info), to_dict(input)),
                         article=_article, thread=ForumThread.of)
