"""GraphQL root fields of search (`search`) and case article suggestions (`suggestedArticles`)."""

from __future__ import annotations

from enum import Enum

import strawberry

import resolvers.search
from resolvers import suggestions
from resolvers.search import sources  # noqa: F401  (indexes articles and cases)
from schema.articles.types import Article
from schema.common import Info, ctx
from schema.common import query as query_


@strawberry.enum
class SearchKind(Enum):
    ARTICLE = "ARTICLE"
    CASE = "CASE"
    FORUM_THREAD = "FORUM_THREAD"
    IDEA = "IDEA"


@strawberry.type(description="One search result: what it is, its title, a passage the caller may read, its score.")
class SearchHit:
    kind: SearchKind
    id: strawberry.ID
    title: str
    snippet: str = strawberry.field(description="Cut only from fields the caller may read.")
    score: float = strawberry.field(description="BM25 relevance times the document's boost (higher is better).")


@strawberry.type(description="An article that may solve a case, with why it was suggested.")
class ArticleSuggestion:
    article: Article
    score: float
    reason: str = strawberry.field(description="The case words that matched, and where (subject, description, "
                                               "latest comment).")


@strawberry.type
class Query:
    @strawberry.field(description="Ranked search over articles, cases, forum threads and ideas the caller may read "
                                  "(stemmed, typo-tolerant; title weighs most). `first` defaults to 10, at most 50.")
    async def search(
        self, info: Info, query: str, kinds: list[SearchKind] | None = None, first: int | None = None
    ) -> list[SearchHit]:
        found = await query_(resolvers.search.search(ctx(info), query, [k.value for k in kinds] if kinds else None,
                                                     first))
        return [SearchHit(kind=SearchKind(r.kind), id=strawberry.ID(r.id), title=r.title, snippet=r.snippet,
                          score=r.score) for r in found]

    @strawberry.field(description="Articles likely to solve the case, from its subject, description and latest "
                                  "customer comments (only articles the caller may read). `first` defaults to 5.")
    async def suggested_articles(
        self, info: Info, case_id: strawberry.ID, first: int | None = None
    ) -> list[ArticleSuggestion]:
        found = await query_(suggestions.suggested(ctx(info), str(case_id), first))
        return [ArticleSuggestion(article=Article.from_doc(s.article), score=s.score, reason=s.reason) for s in found]
