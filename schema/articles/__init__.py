"""GraphQL root fields of knowledge articles (types in `types`, inputs and payloads in `inputs`)."""

from __future__ import annotations

import strawberry

from resolvers.articles import authoring, core, feedback, proposals, ratings, revisions
from schema.articles.inputs import (
    ArticleCreateInput,
    ArticleCreatePayload,
    ArticleEditDecideInput,
    ArticleEditDecidePayload,
    ArticleEditProposalFilter,
    ArticleEditProposeInput,
    ArticleEditProposePayload,
    ArticleFeedbackAddInput,
    ArticleFeedbackAddPayload,
    ArticleFeedbackResolveInput,
    ArticleFeedbackResolvePayload,
    ArticleFilter,
    ArticleFollowInput,
    ArticleFollowPayload,
    ArticleRateInput,
    ArticleRatePayload,
    ArticleRecordViewInput,
    ArticleRecordViewPayload,
    ArticleRevertInput,
    ArticleRevertPayload,
    ArticleSetStateInput,
    ArticleSetStatePayload,
    ArticleUnfollowInput,
    ArticleUnfollowPayload,
    ArticleUpdateInput,
    ArticleUpdatePayload,
)
from schema.articles.types import (
    Article,
    ArticleAudience,
    ArticleConnection,
    ArticleEditProposal,
    ArticleFeedback,
    ArticleFeedbackStatus,
    ArticleRevision,
    ArticleState,
)
from schema.common import Connection, Info, ctx, mutate, query, to_dict

__all__ = [
    "Article", "ArticleAudience", "ArticleConnection", "ArticleFeedback", "ArticleRevision", "ArticleState",
    "Mutation", "Query",
]


@strawberry.type
class Query:
    @strawberry.field(description="An article the caller may read (customers: published ones only).")
    async def article(self, info: Info, id: strawberry.ID) -> Article | None:
        doc = await query(core.get(ctx(info), id))
        return Article.from_doc(doc) if doc else None

    @strawberry.field(description="Articles the caller may read, highest score first, then most recently updated.")
    async def articles(
        self, info: Info, filter: ArticleFilter | None = None, first: int | None = None, after: str | None = None
    ) -> ArticleConnection:
        criteria = to_dict(filter) if filter else {}
        page = await query(core.list_articles(ctx(info), criteria, first, after))
        return ArticleConnection.of(page, criteria)

    @strawberry.field(description="Edit proposals, newest first (editors: all; others: theirs, or an article's "
                                  "when they may decide on it).")
    async def article_edit_proposals(
        self, info: Info, filter: ArticleEditProposalFilter | None = None, first: int | None = None,
        after: str | None = None,
    ) -> Connection[ArticleEditProposal]:
        page = await query(proposals.list_proposals(ctx(info), to_dict(filter) if filter else {}, first, after))
        return Connection.of(page, ArticleEditProposal.from_doc)

    @strawberry.field(description="Feedback, newest first (editors: all; staff: on their articles; customers: own).")
    async def article_feedback_queue(
        self, info: Info, status: list[ArticleFeedbackStatus] | None = None, first: int | None = None,
        after: str | None = None,
    ) -> Connection[ArticleFeedback]:
        statuses = [s.value for s in status] if status else None
        page = await query(feedback.queue(ctx(info), statuses, first, after))
        return Connection.of(page, ArticleFeedback.from_doc)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def article_create(self, info: Info, input: ArticleCreateInput) -> ArticleCreatePayload:
        return await mutate(ArticleCreatePayload, authoring.create(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation
    async def article_update(self, info: Info, input: ArticleUpdateInput) -> ArticleUpdatePayload:
        return await mutate(ArticleUpdatePayload, revisions.update(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation
    async def article_set_state(self, info: Info, input: ArticleSetStateInput) -> ArticleSetStatePayload:
        return await mutate(ArticleSetStatePayload, authoring.set_state(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation
    async def article_revert(self, info: Info, input: ArticleRevertInput) -> ArticleRevertPayload:
        return await mutate(ArticleRevertPayload, revisions.revert(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation
    async def article_edit_propose(self, info: Info, input: ArticleEditProposeInput) -> ArticleEditProposePayload:
        return await mutate(ArticleEditProposePayload, proposals.propose(ctx(info), to_dict(input)),
                            proposal=ArticleEditProposal.from_doc, article=Article.from_doc)

    @strawberry.mutation
    async def article_edit_decide(self, info: Info, input: ArticleEditDecideInput) -> ArticleEditDecidePayload:
        return await mutate(ArticleEditDecidePayload, proposals.decide(ctx(info), to_dict(input)),
                            proposal=ArticleEditProposal.from_doc, article=Article.from_doc)

    @strawberry.mutation
    async def article_rate(self, info: Info, input: ArticleRateInput) -> ArticleRatePayload:
        return await mutate(ArticleRatePayload, ratings.rate(ctx(info), to_dict(input)), article=Article.from_doc)

    @strawberry.mutation
    async def article_feedback_add(self, info: Info, input: ArticleFeedbackAddInput) -> ArticleFeedbackAddPayload:
        return await mutate(ArticleFeedbackAddPayload, feedback.add(ctx(info), to_dict(input)),
                            feedback=ArticleFeedback.from_doc, article=Article.from_doc)

    @strawberry.mutation
    async def article_feedback_resolve(
        self, info: Info, input: ArticleFeedbackResolveInput
    ) -> ArticleFeedbackResolvePayload:
        return await mutate(ArticleFeedbackResolvePayload, feedback.resolve(ctx(info), to_dict(input)),
                            feedback=ArticleFeedback.from_doc, article=Article.from_doc)

    @strawberry.mutation
    async def article_follow(self, info: Info, input: ArticleFollowInput) -> ArticleFollowPayload:
        return await mutate(ArticleFollowPayload, authoring.follow(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation
    async def article_unfollow(self, info: Info, input: ArticleUnfollowInput) -> ArticleUnfollowPayload:
        return await mutate(ArticleUnfollowPayload, authoring.unfollow(ctx(info), to_dict(input)),
                            article=Article.from_doc)

    @strawberry.mutation(description="Count one view of an article (no event).")
    async def article_record_view(self, info: Info, input: ArticleRecordViewInput) -> ArticleRecordViewPayload:
        return await mutate(ArticleRecordViewPayload, authoring.record_view(ctx(info), to_dict(input)),
                            article=Article.from_doc)
