"""GraphQL types of knowledge and support metrics (definitions in `docs/metrics.md`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from resolvers import metrics
from resolvers.articles import core
from schema.articles import Article
from schema.common import Info, ctx, query
from schema.users import User, user_ref


@strawberry.type(description="An article and how many cases closed in the window it solved.")
class TopArticle:
    cases_closed: int
    article_id: strawberry.ID

    @strawberry.field
    async def article(self, info: Info) -> Article | None:
        doc = await query(core.get(ctx(info), self.article_id))
        return Article.from_doc(doc) if doc else None


@strawberry.type(description="One staff member's contribution in the window.")
class Contribution:
    user_id: strawberry.ID
    cases_solved: int = strawberry.field(description="Cases closed in the window while assigned to them.")
    articles_created: int
    articles_improved: int = strawberry.field(description="Article revisions they authored (edits, reverts, "
                                                          "accepted proposals).")
    feedback_handled: int = strawberry.field(description="Article feedback they moved to ACCEPTED/REJECTED/DONE.")

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await user_ref(info, self.user_id)


@strawberry.type(description="KCS health of the tenant over `[from, to)`.")
class KnowledgeMetrics:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    cases_closed: int
    cases_with_links: int
    link_rate: float = strawberry.field(description="Share of cases closed in the window with ≥ 1 linked article.")
    reuse_count: int = strawberry.field(description="(case, article) pairs linked in the window where the article "
                                                    "existed before the case was opened.")
    known_issues: int = strawberry.field(description="Closed cases linked to an article older than the case.")
    new_issues: int = strawberry.field(description="Closed linked cases whose articles all came after the case.")
    top_articles: list[TopArticle] = strawberry.field(
        description="Articles by number of closed cases they solved (SOLVED_BY or CAPTURED).")
    articles_created: int
    articles_captured_from_cases: int
    flagged_count: int = strawberry.field(description="Now: non-archived articles flagged for rework.")
    low_rated_count: int = strawberry.field(description="Now: rated non-archived articles scoring under 0.2.")
    stale_count: int = strawberry.field(description="VALIDATED articles not updated in the 180 days before `to`.")
    rated_count: int
    average_score: float = strawberry.field(description="Now: mean score of rated non-archived articles.")
    contributors: list[Contribution]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> KnowledgeMetrics:
        values = {k: v for k, v in doc.items() if k not in ("from", "topArticles", "contributors")}
        return cls(
            from_=doc["from"], top_articles=[TopArticle(cases_closed=t["casesClosed"], article_id=t["articleId"])
                                             for t in doc["topArticles"]],
            contributors=[Contribution(user_id=c["userId"], cases_solved=c["casesSolved"],
                                       articles_created=c["articlesCreated"],
                                       articles_improved=c["articlesImproved"],
                                       feedback_handled=c["feedbackHandled"]) for c in doc["contributors"]],
            **{_snake(k): v for k, v in values.items()},
        )


@strawberry.type(description="Service outcomes of the tenant over `[from, to)`.")
class SupportMetrics:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    cases_opened: int
    cases_closed: int
    first_contact_resolved: int
    cases_reopened: int
    first_contact_resolution: float = strawberry.field(
        description="Share of cases closed in the window never reopened, never reassigned, with ≤ 1 public staff "
                    "reply.")
    self_service_sessions: int
    self_service_escalated: int
    self_service_resolved: int
    self_service_deflection: float = strawberry.field(
        description="Share of self-service sessions started in the window that did not become a case.")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SupportMetrics:
        return cls(from_=doc["from"], **{_snake(k): v for k, v in doc.items() if k != "from"})


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@strawberry.type
class Query:
    @strawberry.field(description="Knowledge metrics (supervisors, editors, admins). Default window: last 30 days.")
    async def knowledge_metrics(
        self, info: Info, from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None, top: int = 10,
    ) -> KnowledgeMetrics:
        return KnowledgeMetrics.from_doc(await query(metrics.knowledge_metrics(ctx(info), from_, to, top)))

    @strawberry.field(description="Support metrics (supervisors, editors, admins). Default window: last 30 days.")
    async def support_metrics(
        self, info: Info, from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> SupportMetrics:
        return SupportMetrics.from_doc(await query(metrics.support_metrics(ctx(info), from_, to)))
