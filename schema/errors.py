"""Error shaping: known failures carry `extensions.code`, everything unexpected is masked."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from hub import metrics
from hub.errors import HubError
from hub.store import is_outage, unavailable

log = logging.getLogger("hub.errors")


def shape(error: GraphQLError) -> GraphQLError:
    """The client-facing form of one error (also used for subscription errors)."""
    original = error.original_error
    if original is not None and is_outage(original):
        original = unavailable(original)  # the store is down or hung: retryable, not INTERNAL
    if isinstance(original, HubError):
        extensions = {"code": original.code.value}
        if original.field:
            extensions["field"] = original.field
        if (retry := getattr(original, "retry_after", None)) is not None:
            extensions["retryAfter"] = retry  # hub.ratelimit.RateLimited
        metrics.ERRORS.labels(original.code.value).inc()
        return GraphQLError(original.message, error.nodes, error.source, error.positions,
                            error.path, extensions=extensions)
    if original is None or isinstance(original, GraphQLError):
        code = (error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED"
        metrics.ERRORS.labels(str(code)).inc()
        return GraphQLError(error.message, error.nodes, error.source, error.positions,
                            error.path, extensions={**(error.extensions or {}), "code": code})
    log.error("unexpected error at %s", error.path, exc_info=original)
    metrics.ERRORS.labels("INTERNAL").inc()
    return GraphQLError("Internal server error", error.nodes, error.source, error.positions,
                        error.path, extensions={"code": "INTERNAL"})


class ShapeErrors(MaskErrors):
    """`MaskErrors` that keeps known codes and masks the rest as `INTERNAL`."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [shape(e) for e in errors]
