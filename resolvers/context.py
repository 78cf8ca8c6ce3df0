"""The per-request context handed to every resolver (fresh per HTTP request and per event)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hub.auth import Identity
from hub.errors import ErrorCode, HubError
from hub.events import EventLog
from hub.runtime import Hub
from hub.store import Doc, TenantDB
from resolvers.loaders import Loader, by_id


@dataclass
class Context:
    hub: Hub
    identity: Identity | None
    request: Any = None
    connection_params: dict[str, Any] | None = None
    client_ip: str = ""
    public_tenant: str | None = None
    """`X-Hub-Tenant` of an anonymous HTTP request: the tenant whose public forum/ideas it reads."""
    _loaders: dict[str, Loader[Any, Any]] = field(default_factory=dict)

    @property
    def me(self) -> Identity:
        """The caller; `UNAUTHENTICATED` when the request carries no valid token."""
        if self.identity is None:
            raise HubError(ErrorCode.UNAUTHENTICATED, "Authentication required")
        if self.identity.expired():
            raise HubError(ErrorCode.UNAUTHENTICATED, "Token expired")
        return self.identity

    @property
    def db(self) -> TenantDB:
        return self.hub.store.tenant(self.me.tenant)

    @property
    def events(self) -> EventLog:
        return self.hub.events

    def loader(self, collection: str) -> Loader[str, Doc]:
        """The by-id loader of a collection, memoised on this context."""
        name = f"id:{collection}"
        if name not in self._loaders:
            self._loaders[name] = by_id(self.db, collection)
        loader: Loader[str, Doc] = self._loaders[name]
        return loader

    def memo(self, name: str, make: Any) -> Any:
        """Any other loader, memoised under `name` (`make()` builds it once)."""
        if name not in self._loaders:
            self._loaders[name] = make()
        return self._loaders[name]

    def fresh(self) -> Context:
        """A copy with empty loaders: subscriptions resolve each event with one of these."""
        return replace(self, _loaders={})
