"""Presence records: one device's entry, and the per-user view others see."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

ONLINE = "~online"
"""The tenant-wide pseudo-resource every heartbeat also refreshes (``User.online``, experts)."""

STATES = ("VIEWING", "EDITING", "COMPOSING", "IDLE")
STATUSES = ("AVAILABLE", "BUSY", "AWAY", "OFFLINE")


@dataclass(frozen=True)
class Entry:
    """One device of one user on one resource."""

    uid: str
    device: str
    state: str
    status: str
    role: str  # "agent" for staff, "customer" otherwise: the label customers see
    name: str
    updated_at: float  # epoch seconds
    expires_at: float
    leaving: bool = False  # a tombstone: counts as present until it expires, but never as a join

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Entry:
        return cls(**json.loads(raw))

    @property
    def member(self) -> str:
        return member(self.uid, self.device)


@dataclass(frozen=True)
class View:
    """What others see of one user on one resource: the freshest of their devices."""

    uid: str
    state: str
    status: str
    role: str
    name: str
    updated_at: float

    def key(self) -> str:
        """The announced form: changes of `updated_at` alone are not news."""
        return json.dumps([self.state, self.status, self.role, self.name])

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> View:
        return cls(**json.loads(raw))

    def to_message(self, present: bool) -> str:
        return json.dumps({**asdict(self), "present": present}, separators=(",", ":"))


def member(uid: str, device: str) -> str:
    return json.dumps([uid, device], separators=(",", ":"))


def aggregate(entries: list[Entry]) -> dict[str, View]:
    """Per user, the view of their most recently updated device."""
    best: dict[str, Entry] = {}
    for entry in entries:
        current = best.get(entry.uid)
        if current is None or entry.updated_at > current.updated_at:
            best[entry.uid] = entry
    return {
        uid: View(uid=e.uid, state=e.state, status=e.status, role=e.role, name=e.name, updated_at=e.updated_at)
        for uid, e in best.items()
    }


def decode_message(raw: str) -> tuple[View, bool]:
    """A bus message of a presence channel → (view, present)."""
    body: dict[str, Any] = json.loads(raw)
    present = bool(body.pop("present"))
    return View(**body), present
