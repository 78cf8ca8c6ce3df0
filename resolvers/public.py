"""Anonymous public reads and posts (forum front-ends, idea portals): who the caller is without a token.

A request without `Authorization` may name a tenant in the `X-Hub-Tenant` header (kept on the
context as `public_tenant`); the forum and ideas domains then serve it as an anonymous customer of
that tenant: public threads and ideas only, never drafts, internal notes, linked cases or staff
assessments. With a token the header is ignored (the token's tenant wins). Only the forum and
ideas modules call :func:`view`; every other domain keeps answering `UNAUTHENTICATED`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hub.auth import Identity
from hub.errors import ErrorCode, HubError
from resolvers.context import Context

_MARK = object()
"""Set in the claims of anonymous identities only (a JWT cannot carry a Python object)."""
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def identity(tenant: str, sub: str = "", name: str = "Guest") -> Identity:
    """An anonymous customer of `tenant` (`sub` empty for readers, the poster's id for a post)."""
    return Identity(sub=sub, tenant=tenant, roles=frozenset({"customer"}), name=name,
                    claims={"anonymous": _MARK})


def is_anonymous(ctx: Context) -> bool:
    """Whether `ctx` serves an anonymous caller (a context from :func:`view` or :func:`as_poster`)."""
    return ctx.identity is None or ctx.identity.claims.get("anonymous") is _MARK


def tenant_hint(ctx: Context) -> str:
    """The `X-Hub-Tenant` of an anonymous request; `UNAUTHENTICATED` when absent or malformed."""
    tenant = (ctx.public_tenant or "").strip()
    if not tenant:
        raise HubError(ErrorCode.UNAUTHENTICATED,
                       "Authentication required (or an X-Hub-Tenant header for public reads)")
    if not _TENANT.match(tenant):
        raise HubError(ErrorCode.UNAUTHENTICATED, "Malformed X-Hub-Tenant header")
    return tenant


def view(ctx: Context) -> Context:
    """The context public reads run under: the caller's own with a token, else an anonymous one."""
    if ctx.identity is not None:
        ctx.me  # noqa: B018 — raises UNAUTHENTICATED for an expired token
        return ctx
    made: Context = ctx.memo("public:view", lambda: replace(ctx, identity=identity(tenant_hint(ctx)), _loaders={}))
    return made


def as_poster(ctx: Context, sub: str, name: str) -> Context:
    """An anonymous context acting as the poster `sub` (their events carry `sub` as actor)."""
    return replace(ctx, identity=identity(tenant_hint(ctx), sub, name), _loaders={})
