"""GraphQL object types of knowledge articles."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers.articles import core, feedback, ratings, revisions
from resolvers.pagination import Page
from schema.common import JSON, Connection, Info, PageInfo, ctx, query
from schema.users import User, user_ref

if TYPE_CHECKING:
    from schema.cases import Case


@strawberry.enum
class ArticleAudience(Enum):
    INTERNAL = "INTERNAL"
    EXTERNAL = "EXTERNAL"


@strawberry.enum
class ArticleState(Enum):
    WORK_IN_PROGRESS = "WORK_IN_PROGRESS"
    NOT_VALIDATED = "NOT_VALIDATED"
    VALIDATED = "VALIDATED"
    ARCHIVED = "ARCHIVED"


@strawberry.enum
class ArticleFeedbackKind(Enum):
    GAP = "GAP"
    INACCURATE = "INACCURATE"
    OUTDATED = "OUTDATED"
    SUGGESTION = "SUGGESTION"


@strawberry.enum
class ArticleFeedbackStatus(Enum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    DONE = "DONE"


@strawberry.enum
class ArticleEditProposalStatus(Enum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


@strawberry.enum
class ArticleRevisionKind(Enum):
    CREATED = "CREATED"
    EDITED = "EDITED"
    REVERTED = "REVERTED"
    PROPOSAL = "PROPOSAL"


@strawberry.type(description="One changed field of a revision or proposal (values as JSON).")
class ArticleFieldChange:
    field: str
    before: JSON | None  # type: ignore[valid-type]
    after: JSON | None  # type: ignore[valid-type]


@strawberry.type(description="One revision: author, time, full content snapshot and the diff to the previous one.")
class ArticleRevision:
    id: strawberry.ID
    revision: int
    kind: ArticleRevisionKind
    created_at: datetime
    title: str
    issue: str
    environment: str
    cause: str
    resolution: str
    tags: list[str]
    product: str
    audience: ArticleAudience
    changes: list[ArticleFieldChange]
    diff: str = strawberry.field(description="Unified text diff (`a/<field>` → `b/<field>`) of the changed fields.")
    reverted_to: int | None
    proposal_id: strawberry.ID | None
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ArticleRevision:
        snap = doc["snapshot"]
        return cls(
            id=strawberry.ID(doc["_id"]), revision=doc["revision"], kind=ArticleRevisionKind(doc["kind"]),
            created_at=doc["createdAt"], title=snap["title"], issue=snap["issue"],
            environment=snap["environment"], cause=snap["cause"], resolution=snap["resolution"],
            tags=snap["tags"], product=snap["product"], audience=ArticleAudience(snap["audience"]),
            changes=[ArticleFieldChange(field=c["field"], before=c["before"], after=c["after"])
                     for c in doc["changes"]],
            diff=doc["diff"], reverted_to=doc.get("revertedTo"), proposal_id=doc.get("proposalId"), doc=doc,
        )

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        return await user_ref(info, self.doc["authorId"])

    @strawberry.field(description="Who accepted the proposal this revision applies, if any.")
    async def approved_by(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("approvedBy"))


@strawberry.type(description="The caller's own vote on an article.")
class ArticleRating:
    helpful: bool
    comment: str
    updated_at: datetime


@strawberry.type
class ArticleFeedback:
    id: strawberry.ID
    kind: ArticleFeedbackKind
    body: str
    status: ArticleFeedbackStatus
    revision: int = strawberry.field(description="The article's revision when the feedback was filed.")
    resolved_revision: int | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ArticleFeedback:
        return cls(
            id=strawberry.ID(doc["_id"]), kind=ArticleFeedbackKind(doc["kind"]), body=doc["body"],
            status=ArticleFeedbackStatus(doc["status"]), revision=doc["revision"],
            resolved_revision=doc.get("resolvedRevision"), note=doc.get("note"),
            created_at=doc["createdAt"], updated_at=doc["updatedAt"], doc=doc,
        )

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        return await user_ref(info, self.doc["authorId"])

    @strawberry.field
    async def article(self, info: Info) -> Article | None:
        doc = await query(core.get(ctx(info), self.doc["articleId"]))
        return Article.from_doc(doc) if doc else None


@strawberry.type(description="Changes proposed by someone not licensed to make them, awaiting review.")
class ArticleEditProposal:
    id: strawberry.ID
    status: ArticleEditProposalStatus
    note: str
    base_revision: int
    applied_revision: int | None
    decision_note: str | None
    created_at: datetime
    decided_at: datetime | None
    changes: list[ArticleFieldChange]
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ArticleEditProposal:
        return cls(
            id=strawberry.ID(doc["_id"]), status=ArticleEditProposalStatus(doc["status"]), note=doc["note"],
            base_revision=doc["baseRevision"], applied_revision=doc.get("appliedRevision"),
            decision_note=doc.get("decisionNote"), created_at=doc["createdAt"], decided_at=doc.get("decidedAt"),
            changes=[ArticleFieldChange(field=f, before=doc["base"].get(f), after=v)
                     for f, v in sorted(doc["changes"].items())],
            doc=doc,
        )

    @strawberry.field
    async def proposer(self, info: Info) -> User | None:
        return await user_ref(info, self.doc["proposerId"])

    @strawberry.field
    async def decided_by(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("decidedBy"))

    @strawberry.field
    async def article(self, info: Info) -> Article | None:
        doc = await query(core.get(ctx(info), self.doc["articleId"]))
        return Article.from_doc(doc) if doc else None


@strawberry.type
class Article:
    id: strawberry.ID
    title: str
    issue: str
    environment: str
    cause: str
    resolution: str
    tags: list[str]
    product: str
    audience: ArticleAudience
    state: ArticleState
    revision: int = strawberry.field(description="Bumped by every content edit; pass it as `expectedRevision`.")
    score: float = strawberry.field(description="Wilson lower bound (95 %) of the helpful ratio; 0 unrated.")
    helpful_count: int
    not_helpful_count: int
    flagged: bool = strawberry.field(description="Flagged for rework by low ratings (see docs/articles.md).")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    view_count: int
    use_count: int
    doc: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Article:
        return cls(
            id=strawberry.ID(doc["_id"]), title=doc["title"], issue=doc["issue"], environment=doc["environment"],
            cause=doc["cause"], resolution=doc["resolution"], tags=doc["tags"], product=doc["product"],
            audience=ArticleAudience(doc["audience"]), state=ArticleState(doc["state"]),
            revision=doc["revision"], score=doc.get("score", 0.0), helpful_count=doc.get("helpfulCount", 0),
            not_helpful_count=doc.get("notHelpfulCount", 0), flagged=bool(doc.get("flagged")),
            created_at=doc["createdAt"], updated_at=doc["updatedAt"], published_at=doc.get("publishedAt"),
            view_count=doc.get("viewCount", 0), use_count=doc.get("useCount", 0), doc=doc,
        )

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        return await user_ref(info, self.doc.get("ownerId"))

    @strawberry.field(description="Where the article came from, e.g. a promoted forum answer: `source`, "
                                  "`threadId`, `answerId`, `caseId`, `question`, `answer`, `contributors` "
                                  "(staff only; null for customers).")
    def provenance(self, info: Info) -> JSON | None:  # type: ignore[valid-type]
        return self.doc.get("provenance") if ctx(info).me.is_staff else None

    @strawberry.field(description="Who follows the article (customers see only themselves).")
    async def watchers(self, info: Info) -> list[User]:
        me = ctx(info).me
        uids = [u for u in self.doc.get("watchers", []) if me.is_staff or u == me.sub]
        found = [await user_ref(info, uid) for uid in uids]
        return [u for u in found if u is not None]

    @strawberry.field(description="Newest first; empty for customers.")
    async def revisions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ArticleRevision]:
        page = await query(revisions.list_revisions(ctx(info), self.doc, first, after))
        return Connection.of(page, ArticleRevision.from_doc)

    @strawberry.field(description="Newest first; customers see only their own.")
    async def feedback(
        self, info: Info, status: list[ArticleFeedbackStatus] | None = None, first: int | None = None
    ) -> list[ArticleFeedback]:
        statuses = [s.value for s in status] if status else None
        docs = await query(feedback.for_article(ctx(info), self.doc, statuses, first))
        return [ArticleFeedback.from_doc(d) for d in docs]

    @strawberry.field(description="The caller's own vote, if any.")
    async def viewer_rating(self, info: Info) -> ArticleRating | None:
        doc = await query(ratings.viewer_rating(ctx(info), self.doc["_id"]))
        if doc is None:
            return None
        return ArticleRating(helpful=doc["helpful"], comment=doc.get("comment", ""), updated_at=doc["updatedAt"])

    # Links to cases belong to the knowledge domain (imported lazily: no cycles).
    @strawberry.field(description="Cases this article is linked to, among those the viewer may read "
                                  "(customers: their own).")
    async def linked_cases(self, info: Info) -> list[Annotated[Case, strawberry.lazy("schema.cases")]]:
        from schema.knowledge import linked_cases

        return await linked_cases(info, self.doc)


@strawberry.type
class ArticleEdge:
    cursor: str
    node: Article


@strawberry.type
class ArticleConnection:
    edges: list[ArticleEdge]
    page_info: PageInfo
    filter: strawberry.Private[dict[str, Any]]

    @classmethod
    def of(cls, page: Page, filter: dict[str, Any]) -> ArticleConnection:
        return cls(
            edges=[ArticleEdge(cursor=c, node=Article.from_doc(d)) for c, d in zip(page.cursors, page.items,
                                                                                    strict=True)],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor), filter=filter,
        )

    @strawberry.field(description="How many articles match the filter (only those the caller may read).")
    async def total_count(self, info: Info) -> int:
        return await query(core.count_articles(ctx(info), self.filter))
