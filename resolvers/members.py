"""Membership lists with join/leave times (swarm members, remote-session participants)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.store import Doc


def entry(uid: str, now: datetime | None = None) -> Doc:
    """A member who joins now."""
    return {"uid": uid, "joinedAt": now or datetime.now(UTC), "leftAt": None}


def active(members: list[Doc], uid: str) -> bool:
    """Whether `uid` joined and has not left."""
    return any(m["uid"] == uid and m.get("leftAt") is None for m in members)


def leave(members: list[Doc], uid: str | None, now: datetime) -> list[Doc]:
    """The list with `uid` (or, when None, everyone still in) marked as left at `now`."""
    return [{**m, "leftAt": now} if m.get("leftAt") is None and uid in (None, m["uid"]) else m for m in members]
