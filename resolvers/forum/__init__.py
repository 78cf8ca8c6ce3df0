"""The forum pipeline: Receive → Consult → Create → Respond → Distribute (see docs/forum.md).

Modules: `core` (documents, audiences, reads, the `forum:<id>` stream, the `forum_…` comment
thread and notification recipients), `posting` (questions with their linked case, answers,
accepting), `knowledge` (suggested experts, the staff draft, promotion to an article),
`indexing` (search index upkeep for threads and ideas).
"""

from resolvers.forum import core, knowledge, posting

__all__ = ["core", "knowledge", "posting"]
