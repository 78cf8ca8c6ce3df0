"""JWT identity: minting dev tokens and verifying bearer tokens."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import jwt

from hub.errors import ErrorCode, HubError

ROLES = frozenset({"customer", "agent", "expert", "supervisor", "editor", "admin"})
STAFF_ROLES = frozenset({"agent", "expert", "supervisor", "editor", "admin"})
KCS_LEVELS = ("candidate", "contributor", "publisher")


@dataclass(frozen=True)
class Identity:
    """Who is calling: the verified claims of a token."""

    sub: str
    tenant: str
    roles: frozenset[str]
    name: str = ""
    skills: tuple[str, ...] = ()
    kcs: str | None = None
    exp: float | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    @property
    def is_customer(self) -> bool:
        return not self.is_staff

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles)) or "admin" in self.roles

    @property
    def is_supervisor(self) -> bool:
        return self.has("supervisor")

    def expired(self, now: float | None = None) -> bool:
        return self.exp is not None and (now or time.time()) >= self.exp


def mint(
    secret: str,
    *,
    sub: str,
    tenant: str,
    roles: list[str],
    name: str | None = None,
    skills: list[str] | None = None,
    kcs: str | None = None,
    ttl: int = 8 * 3600,
    issuer: str = "collabhub",
) -> str:
    """Sign a token with the given claims (used by `collabhub token`, seeds and tests)."""
    bad = set(roles) - ROLES
    if bad or not roles:
        raise ValueError(f"unknown roles {sorted(bad)}; use any of {sorted(ROLES)}")
    if kcs is not None and kcs not in KCS_LEVELS:
        raise ValueError(f"kcs must be one of {KCS_LEVELS}")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub, "tenant": tenant, "roles": roles, "iat": now, "exp": now + ttl, "iss": issuer,
    }
    if name:
        claims["name"] = name
    if skills:
        claims["skills"] = skills
    if kcs:
        claims["kcs"] = kcs
    return jwt.encode(claims, secret, algorithm="HS256")


LEEWAY = 5
"""Seconds of clock skew accepted on `exp` (and `nbf`/`iat`)."""
CACHE_SIZE = 4096
CACHE_TTL = 60.0
_verified: dict[tuple[str, str, str], tuple[float, Identity]] = {}
"""Tokens verified lately, by (token, secret, issuer): (until when the entry may answer, identity).
A request carries its token through several layers (rate limit, 401 guard, GraphQL context), and
clients send the same token for hours: decoding and checking it each time was ~60 µs per layer."""


def verify(token: str, secret: str, issuer: str = "collabhub") -> Identity:
    """Decode and validate a token; raises `HubError(UNAUTHENTICATED)` on any problem.

    A token that verified in the last `CACHE_TTL` seconds (for the same secret and issuer) is
    answered from a bounded cache, never past its `exp` (plus the same leeway): an expired token
    is decoded again, so it fails exactly as it would uncached. Failures are never cached.
    """
    key = (token, secret, issuer)
    now = time.time()
    hit = _verified.get(key)
    if hit is not None:
        if now < hit[0]:
            return hit[1]
        _verified.pop(key, None)
    identity = _decode(token, secret, issuer)
    if len(_verified) >= CACHE_SIZE:  # drop the oldest entries (dicts keep insertion order)
        for old in list(itertools.islice(_verified, CACHE_SIZE // 8)):
            _verified.pop(old, None)
    until = now + CACHE_TTL if identity.exp is None else min(now + CACHE_TTL, identity.exp + LEEWAY)
    _verified[key] = (until, identity)
    return identity


def _decode(token: str, secret: str, issuer: str) -> Identity:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=issuer,
            options={"require": ["sub", "exp"]}, leeway=LEEWAY,
        )
    except jwt.ExpiredSignatureError as exc:
        raise HubError(ErrorCode.UNAUTHENTICATED, "Token expired") from exc
    except jwt.PyJWTError as exc:
        raise HubError(ErrorCode.UNAUTHENTICATED, f"Invalid token: {exc}") from exc
    tenant, roles = claims.get("tenant"), claims.get("roles")
    if not isinstance(tenant, str) or not tenant or not isinstance(roles, list):
        raise HubError(ErrorCode.UNAUTHENTICATED, "Token lacks tenant or roles")
    valid_roles = frozenset(r for r in roles if r in ROLES)
    if not valid_roles:
        raise HubError(ErrorCode.UNAUTHENTICATED, "Token has no known role")
    skills = claims.get("skills") or []
    kcs = claims.get("kcs")
    return Identity(
        sub=str(claims["sub"]),
        tenant=tenant,
        roles=valid_roles,
        name=str(claims.get("name") or claims["sub"]),
        skills=tuple(str(s) for s in skills) if isinstance(skills, list) else (),
        kcs=kcs if kcs in KCS_LEVELS else None,
        exp=float(claims["exp"]),
        claims=claims,
    )


def bearer(header: str | None) -> str | None:
    """Extract the token from an `Authorization: Bearer …` value."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
