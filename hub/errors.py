"""Error codes of the public contract and the exception resolvers raise."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    EVENTS_PRUNED = "EVENTS_PRUNED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class HubError(Exception):
    """A failure the client caused or can act on; becomes a `UserError` or `extensions.code`."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def invalid(message: str, field: str | None = None) -> HubError:
    return HubError(ErrorCode.INVALID, message, field)


def forbidden(message: str = "You are not allowed to do this", field: str | None = None) -> HubError:
    return HubError(ErrorCode.FORBIDDEN, message, field)


def not_found(what: str = "Object", field: str | None = None) -> HubError:
    return HubError(ErrorCode.NOT_FOUND, f"{what} not found", field)


def conflict(message: str, field: str | None = None) -> HubError:
    return HubError(ErrorCode.CONFLICT, message, field)
