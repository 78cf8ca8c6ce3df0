"""Knowledge articles with KCS authoring (see `core` for licences and visibility).

Modules: `core` (documents, licences, visibility, lists, the `article:<id>` stream),
`authoring` (create, states, watching, views), `revisions` (edits, diffs, revert),
`proposals` (propose / decide), `ratings` (votes, score, flag), `feedback` (lifecycle).
Other domains use `get`, `can_read`, `visible_filter` and `published` from here.
"""

from resolvers.articles.core import can_read, get, published, stream, visible_filter

__all__ = ["can_read", "get", "published", "stream", "visible_filter"]
