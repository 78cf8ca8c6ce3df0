"""The expert finder: staff ranked for a skill by match, availability, load and past contribution.

score = 40 · skill match   (share of the wanted skills the user has; 1 when no skill is asked)
      + 30 · availability  (1 online and AVAILABLE, 0.5 online and BUSY/AWAY, 0 offline/invisible)
      + 20 · 1/(1 + load)  (load = open cases assigned to them: NEW, OPEN or PENDING)
      + 10 · min(1, contribution / 10)  (cases solved or closed as assignee + articles they own)

Ties go to the more available, then to the lower user id, so the order is stable. Only staff are
candidates; only staff may ask. Availability comes from presence (`hub.presence`), load and
contribution from the store with one aggregation each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pymongo import ASCENDING, IndexModel

from hub.auth import STAFF_ROLES
from hub.errors import forbidden, invalid
from hub.store import Doc, register_indexes
from resolvers import presence
from resolvers.context import Context

register_indexes(
    "cases", IndexModel([("tenant", ASCENDING), ("assigneeId", ASCENDING), ("status", ASCENDING)]),
)

OPEN = ("NEW", "OPEN", "PENDING")
SOLVED = ("SOLVED", "CLOSED")
WEIGHTS = {"skill": 40.0, "availability": 30.0, "load": 20.0, "contribution": 10.0}
MAX_CANDIDATES = 1000
MAX_SKILL = 100


@dataclass(frozen=True)
class Ranked:
    user: Doc
    score: float
    skill_match: float
    status: str  # the presence status, OFFLINE when not online
    load: int
    solved: int
    articles: int

    @property
    def online(self) -> bool:
        return self.status != "OFFLINE"


def normalise(skills: Iterable[str | None]) -> list[str]:
    out = []
    for skill in skills:
        text = (skill or "").strip().lower()
        if len(text) > MAX_SKILL:
            raise invalid(f"A skill is at most {MAX_SKILL} characters", "skills")
        if text and text not in out:
            out.append(text)
    return out


def availability(status: str) -> float:
    return {"AVAILABLE": 1.0, "BUSY": 0.5, "AWAY": 0.5}.get(status, 0.0)


async def _counts(ctx: Context, uids: list[str]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Open load and solved cases per assignee, articles per owner."""
    load: dict[str, int] = {}
    solved: dict[str, int] = {}
    for row in await ctx.db["cases"].aggregate([
        {"$match": {"assigneeId": {"$in": uids}, "status": {"$in": [*OPEN, *SOLVED]}}},
        {"$group": {"_id": {"a": "$assigneeId", "s": "$status"}, "n": {"$sum": 1}}},
    ]):
        target = load if row["_id"]["s"] in OPEN else solved
        uid = row["_id"]["a"]
        target[uid] = target.get(uid, 0) + int(row["n"])
    articles = {
        row["_id"]: int(row["n"])
        for row in await ctx.db["articles"].aggregate([
            {"$match": {"ownerId": {"$in": uids}}},
            {"$group": {"_id": "$ownerId", "n": {"$sum": 1}}},
        ])
    }
    return load, solved, articles


async def rank(ctx: Context, skills: list[str], *, online_only: bool = False,
               exclude: Iterable[str] = (), limit: int = 50) -> list[Ranked]:
    """Staff of the tenant ranked for `skills` (all staff when empty), best first."""
    if not ctx.me.is_staff:
        raise forbidden("Only staff may look for experts")
    query: dict[str, object] = {"roles": {"$in": sorted(STAFF_ROLES)}}
    if skills:
        variants = {v for s in skills for v in (s, s.title(), s.upper())}
        query["skills"] = {"$in": sorted(variants)}
    skip = set(exclude)
    candidates = [u for u in await ctx.db["users"].find(query, limit=MAX_CANDIDATES) if u["uid"] not in skip]
    if not candidates:
        return []
    uids = [u["uid"] for u in candidates]
    statuses = await presence.online(ctx, uids)
    if online_only:
        candidates = [u for u in candidates if u["uid"] in statuses]
        uids = [u["uid"] for u in candidates]
    load, solved, articles = await _counts(ctx, uids)
    ranked = []
    for user in candidates:
        uid = user["uid"]
        have = {s.lower() for s in user.get("skills") or []}
        match = len(have & set(skills)) / len(skills) if skills else 1.0
        status = statuses.get(uid, "OFFLINE")
        contribution = solved.get(uid, 0) + articles.get(uid, 0)
        score = (
            WEIGHTS["skill"] * match
            + WEIGHTS["availability"] * availability(status)
            + WEIGHTS["load"] / (1 + load.get(uid, 0))
            + WEIGHTS["contribution"] * min(1.0, contribution / 10)
        )
        ranked.append(Ranked(user, round(score, 3), match, status, load.get(uid, 0), solved.get(uid, 0),
                             articles.get(uid, 0)))
    ranked.sort(key=lambda r: (-r.score, -availability(r.status), r.user["uid"]))
    return ranked[:limit]


async def experts(ctx: Context, skill: str | None, online_only: bool | None) -> list[Ranked]:
    """`experts(skill, onlineOnly)`."""
    return await rank(ctx, normalise([skill]), online_only=bool(online_only))
