"""GraphQL types and mutations of case ↔ article links and capture from a case."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from resolvers import knowledge
from schema.articles import Article
from schema.cases import Case
from schema.common import Info, UserError, ctx, mutate, to_dict
from schema.users import User, user_ref


@strawberry.enum(description="What `caseLinkArticle` records; both count as reuse of the article.")
class CaseLinkRelation(Enum):
    SOLVED_BY = "SOLVED_BY"
    REFERENCED = "REFERENCED"


@strawberry.enum(description="How a case and an article are linked (`CAPTURED`: the article was written from it).")
class CaseArticleRelation(Enum):
    SOLVED_BY = "SOLVED_BY"
    REFERENCED = "REFERENCED"
    CAPTURED = "CAPTURED"


@strawberry.type(description="One link of a case to an article.")
class CaseArticleLink:
    relation: CaseArticleRelation
    created_at: datetime
    link: strawberry.Private[dict[str, Any]]
    article_doc: strawberry.Private[dict[str, Any]]

    @strawberry.field
    def article(self) -> Article:
        return Article.from_doc(self.article_doc)

    @strawberry.field(description="The article existed before the case was opened (a known issue). Staff only.")
    def reuse(self, info: Info) -> bool | None:
        return bool(self.link.get("reuse")) if ctx(info).me.is_staff else None

    @strawberry.field(description="Who linked it (staff only).")
    async def linked_by(self, info: Info) -> User | None:
        return await user_ref(info, self.link.get("createdBy")) if ctx(info).me.is_staff else None


async def case_links(info: Info, case: dict[str, Any]) -> list[CaseArticleLink]:
    pairs = await knowledge.links_of_case(ctx(info), case)
    return [CaseArticleLink(relation=CaseArticleRelation(d["relation"]), created_at=d["createdAt"], link=d,
                            article_doc=a) for d, a in pairs]


async def linked_articles(info: Info, case: dict[str, Any]) -> list[Article]:
    return [Article.from_doc(d) for d in await knowledge.linked_articles(ctx(info), case)]


async def linked_cases(info: Info, article: dict[str, Any]) -> list[Case]:
    return [Case.from_doc(d) for d in await knowledge.linked_cases(ctx(info), article)]


@strawberry.input
class CaseLinkArticleInput:
    case_id: strawberry.ID
    article_id: strawberry.ID
    relation: CaseLinkRelation = CaseLinkRelation.SOLVED_BY


@strawberry.input
class CaseUnlinkArticleInput:
    case_id: strawberry.ID
    article_id: strawberry.ID
    relation: CaseArticleRelation = CaseArticleRelation.SOLVED_BY


@strawberry.input
class ArticleCaptureFromCaseInput:
    case_id: strawberry.ID
    title: str | None = strawberry.field(default=None, description="Defaults to the case's subject.")


@strawberry.type
class CaseLinkArticlePayload:
    errors: list[UserError]
    case: Case | None = None
    article: Article | None = None


@strawberry.type
class CaseUnlinkArticlePayload:
    errors: list[UserError]
    case: Case | None = None
    article: Article | None = None


@strawberry.type
class ArticleCaptureFromCasePayload:
    errors: list[UserError]
    article: Article | None = None
    case: Case | None = None


def _without_link(result: Any) -> Any:
    async def call() -> dict[str, Any]:
        out: dict[str, Any] = await result
        out.pop("link", None)
        return out

    return call()


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Link an article to a case (staff); idempotent; counts as article reuse.")
    async def case_link_article(self, info: Info, input: CaseLinkArticleInput) -> CaseLinkArticlePayload:
        return await mutate(CaseLinkArticlePayload, _without_link(knowledge.link(ctx(info), to_dict(input))),
                            case=Case.from_doc, article=Article.from_doc)

    @strawberry.mutation(description="Remove one link (staff); removing an absent link changes nothing.")
    async def case_unlink_article(self, info: Info, input: CaseUnlinkArticleInput) -> CaseUnlinkArticlePayload:
        return await mutate(CaseUnlinkArticlePayload, knowledge.unlink(ctx(info), to_dict(input)),
                            case=Case.from_doc, article=Article.from_doc)

    @strawberry.mutation(description="A work-in-progress internal article prefilled from the case, linked back.")
    async def article_capture_from_case(
        self, info: Info, input: ArticleCaptureFromCaseInput
    ) -> ArticleCaptureFromCasePayload:
        return await mutate(ArticleCaptureFromCasePayload, knowledge.capture(ctx(info), to_dict(input)),
                            article=Article.from_doc, case=Case.from_doc)
