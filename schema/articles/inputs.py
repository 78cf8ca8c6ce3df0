"""Inputs and payloads of the article mutations."""

from __future__ import annotations

import strawberry

from schema.articles.types import (
    Article,
    ArticleAudience,
    ArticleEditProposal,
    ArticleEditProposalStatus,
    ArticleFeedback,
    ArticleFeedbackKind,
    ArticleFeedbackStatus,
    ArticleState,
)
from schema.common import UserError


@strawberry.input
class ArticleFilter:
    state: list[ArticleState] | None = None
    audience: list[ArticleAudience] | None = None
    tag: str | None = None
    product: str | None = None
    flagged: bool | None = None
    owner_id: strawberry.ID | None = None
    text: str | None = strawberry.field(default=None, description="Every word must occur in the article.")


@strawberry.input
class ArticleEditProposalFilter:
    status: list[ArticleEditProposalStatus] | None = None
    article_id: strawberry.ID | None = None


@strawberry.input
class ArticleCreateInput:
    title: str
    issue: str = ""
    environment: str = ""
    cause: str = ""
    resolution: str = ""
    tags: list[str] | None = None
    product: str = ""
    audience: ArticleAudience | None = None


@strawberry.input(description="Only the fields given change; the edit becomes the next revision.")
class ArticleUpdateInput:
    article_id: strawberry.ID
    expected_revision: int | None = None
    title: str | None = strawberry.UNSET
    issue: str | None = strawberry.UNSET
    environment: str | None = strawberry.UNSET
    cause: str | None = strawberry.UNSET
    resolution: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    product: str | None = strawberry.UNSET
    audience: ArticleAudience | None = strawberry.UNSET


@strawberry.input
class ArticleEditProposeInput:
    article_id: strawberry.ID
    note: str = ""
    title: str | None = strawberry.UNSET
    issue: str | None = strawberry.UNSET
    environment: str | None = strawberry.UNSET
    cause: str | None = strawberry.UNSET
    resolution: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    product: str | None = strawberry.UNSET
    audience: ArticleAudience | None = strawberry.UNSET


@strawberry.input
class ArticleEditDecideInput:
    id: strawberry.ID
    accept: bool
    note: str | None = None


@strawberry.input
class ArticleSetStateInput:
    article_id: strawberry.ID
    state: ArticleState
    expected_revision: int | None = None


@strawberry.input
class ArticleRevertInput:
    article_id: strawberry.ID
    revision: int
    expected_revision: int | None = None


@strawberry.input
class ArticleRateInput:
    article_id: strawberry.ID
    helpful: bool
    comment: str | None = None


@strawberry.input
class ArticleFeedbackAddInput:
    article_id: strawberry.ID
    kind: ArticleFeedbackKind
    body: str


@strawberry.input
class ArticleFeedbackResolveInput:
    feedback_id: strawberry.ID
    status: ArticleFeedbackStatus
    resolved_revision: int | None = None
    note: str | None = None


@strawberry.input
class ArticleFollowInput:
    article_id: strawberry.ID


@strawberry.input
class ArticleUnfollowInput:
    article_id: strawberry.ID


@strawberry.input
class ArticleRecordViewInput:
    article_id: strawberry.ID


@strawberry.type
class ArticleCreatePayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleUpdatePayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleSetStatePayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleRevertPayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleRatePayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleFollowPayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleUnfollowPayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleRecordViewPayload:
    errors: list[UserError]
    article: Article | None = None


@strawberry.type
class ArticleEditProposePayload:
    errors: list[UserError]
    proposal: ArticleEditProposal | None = None
    article: Article | None = None


@strawberry.type
class ArticleEditDecidePayload:
    errors: list[UserError]
    proposal: ArticleEditProposal | None = None
    article: Article | None = None


@strawberry.type
class ArticleFeedbackAddPayload:
    errors: list[UserError]
    feedback: ArticleFeedback | None = None
    article: Article | None = None


@strawberry.type
class ArticleFeedbackResolvePayload:
    errors: list[UserError]
    feedback: ArticleFeedback | None = None
    article: Article | None = None
