"""Ephemeral presence: who is on which resource, per device, with a TTL refreshed by heartbeats.

Nothing here is durable and nothing goes to the event log. Each heartbeat stores one *entry* per
(resource, user, device) that expires ``ttl`` seconds later; a user is present on a resource while
any of their devices is fresh, so closing one tab does not make them leave. With ``HUB_REDIS_URL``
the entries live in Redis (shared by every hub process, so a crashed process's users expire within
the TTL because nobody refreshes them); without it an in-process backend has the same semantics.

Keys per (tenant, resource): ``…:exp`` (sorted set member → expiry ms), ``…:data`` (hash member →
entry JSON) and ``…:ann`` (hash uid → the view last *announced* on the bus). A global sorted set
``hub:presence:index`` holds a lower bound of each resource's next expiry; every process's sweeper
pops expired entries with an atomic script, so exactly one process announces each expiry.

Changes are announced on the bus channel ``<tenant>|presence:<resource>`` by compare-and-set on the
announced view, so concurrent processes never announce the same change twice.

Flap suppression (window ``flap``, ``HUB_PRESENCE_FLAP_S``):

* a *join* is announced only once the user has stayed present for the window, so an ephemeral
  OFFLINE→ONLINE→OFFLINE (a tab that opens and closes, a mobile app woken for a second) is never
  broadcast;
* an explicit *leave* keeps the device entry alive for the window (a tombstone) instead of
  deleting it, so ONLINE→OFFLINE→ONLINE (a page reload) is never broadcast either; the tombstone
  is swept like any expiry, by whichever process sees it first, so a crash cannot lose the leave;
* state/status changes of an announced user (VIEWING→COMPOSING) and TTL expiries (the device was
  silent for a whole TTL) are announced at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict

from hub.bus import Bus, BusBackendError
from hub.presence.backends import Backend, MemoryBackend, RedisBackend
from hub.presence.model import ONLINE, STATES, STATUSES, Entry, View, aggregate, decode_message

__all__ = [
    "ONLINE", "STATES", "STATUSES", "Backend", "Entry", "MemoryBackend", "PresenceStore", "RedisBackend", "View",
    "aggregate", "decode_message",
]

log = logging.getLogger("hub.presence")


class PresenceStore:
    """Heartbeats, leaves, snapshots and change announcements (one per hub process)."""

    def __init__(self, url: str | None, bus: Bus, *, ttl: float = 30.0, flap: float = 1.0,
                 sweep_interval: float = 0.5) -> None:
        self.backend: Backend = RedisBackend(url) if url else MemoryBackend()
        self.bus = bus
        self.ttl = ttl
        self.flap = flap
        self.sweep_interval = sweep_interval
        self._keep_ms = int(max(ttl * 4, 60.0) * 1000)  # safety expiry of the Redis keys
        self._pending: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.announced = 0

    @staticmethod
    def channel(tenant: str, resource: str) -> str:
        return f"{tenant}|presence:{resource}"

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="hub.presence.sweeper")

    async def stop(self) -> None:
        tasks = [t for t in (self._sweeper, *self._pending.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
        await self.backend.close()

    async def heartbeat(self, tenant: str, resource: str | None, uid: str, device: str, *, state: str,
                        role: str, name: str, status: str | None = None) -> Entry:
        """Refresh one device on `resource` (and tenant-wide); returns the stored entry."""
        status = await self.backend.status(tenant, uid, status) or "AVAILABLE"
        now = time.time()
        entry = Entry(uid=uid, device=device, state=state, status=status, role=role, name=name,
                      updated_at=now, expires_at=now + self.ttl)
        await self.backend.touch(tenant, ONLINE, entry, self._keep_ms)
        if resource is not None:
            await self.backend.touch(tenant, resource, entry, self._keep_ms)
            await self._reconcile(tenant, resource, uid)
        return entry

    async def leave(self, tenant: str, resource: str, uid: str, device: str) -> bool:
        """Tombstone one device's entry (expires after the flap window); False if it was absent."""
        now = time.time()
        for entry in await self.backend.entries(tenant, resource):
            if entry.uid == uid and entry.device == device and entry.expires_at > now:
                tomb = Entry(**{**asdict(entry), "expires_at": now + self.flap, "leaving": True})
                await self.backend.touch(tenant, resource, tomb, self._keep_ms)
                if self.flap <= 0:
                    await self.sweep()
                return True
        return False

    async def current(self, tenant: str, resource: str, *, tombstones: bool = True) -> dict[str, View]:
        """Who is on `resource` right now by the raw entries (with or without devices that left)."""
        now = time.time()
        return aggregate([e for e in await self.backend.entries(tenant, resource)
                          if e.expires_at > now and (tombstones or not e.leaving)])

    async def snapshot(self, tenant: str, resource: str) -> dict[str, View]:
        """Who is on `resource` as announced: consistent with the changes broadcast on the bus."""
        return await self.backend.announced(tenant, resource)

    async def online(self, tenant: str, uids: list[str] | None = None) -> dict[str, str]:
        """Status of the online users (all, or those of `uids`) of a tenant; OFFLINE means invisible."""
        views = await self.current(tenant, ONLINE)
        wanted = None if uids is None else set(uids)
        return {uid: v.status for uid, v in views.items() if wanted is None or uid in wanted}

    async def allow(self, key: str, limit: int, window_s: float) -> bool:
        """Fixed-window rate limit shared by every process (with Redis)."""
        return await self.backend.hit(key, window_s) <= limit

    async def sweep(self) -> int:
        """Remove expired entries and announce the users who left; returns how many expired."""
        gone = await self.backend.pop_expired(time.time())
        for tenant, resource, entry in {(t, r, e.uid): (t, r, e) for t, r, e in gone}.values():
            if resource != ONLINE:
                await self._reconcile(tenant, resource, entry.uid)
        return len(gone)

    async def _reconcile(self, tenant: str, resource: str, uid: str) -> None:
        """Compare the current view of `uid` with the announced one and announce the difference."""
        view = (await self.current(tenant, resource)).get(uid)
        announced = (await self.backend.announced(tenant, resource)).get(uid)
        if (view.key() if view else None) == (announced.key() if announced else None):
            return
        if view is not None and announced is None and self.flap > 0:
            key = (tenant, resource, uid)  # a join: announce it only if it lasts the flap window
            if key not in self._pending:
                task = asyncio.create_task(self._later(key))
                self._pending[key] = task
                task.add_done_callback(lambda _t: self._pending.pop(key, None))
            return
        await self._announce(tenant, resource, uid, view, announced)

    async def _later(self, key: tuple[str, str, str]) -> None:
        await asyncio.sleep(self.flap)
        tenant, resource, uid = key
        try:
            # a device that already left does not confirm a join (OFFLINE→ONLINE→OFFLINE is a flap)
            view = (await self.current(tenant, resource, tombstones=False)).get(uid)
            announced = (await self.backend.announced(tenant, resource)).get(uid)
            if view is not None:
                await self._announce(tenant, resource, uid, view, announced)
        except Exception:
            log.warning("presence: deferred announcement failed", exc_info=True)

    async def _announce(self, tenant: str, resource: str, uid: str, view: View | None,
                        previous: View | None) -> None:
        if not await self.backend.announce(tenant, resource, uid, view, self._keep_ms):
            return  # nothing new, or another process announced it first
        if view is None:
            base = previous or View(uid=uid, state="IDLE", status="OFFLINE", role="agent", name=uid, updated_at=0)
            message = View(uid=uid, state=base.state, status="OFFLINE", role=base.role, name=base.name,
                           updated_at=time.time()).to_message(False)
        else:
            message = view.to_message(True)
        self.announced += 1
        try:
            await self.bus.publish(self.channel(tenant, resource), message)
        except BusBackendError:
            log.warning("presence: bus unavailable, change on %s not broadcast", resource)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # keep sweeping through Redis outages
                log.warning("presence: sweep failed", exc_info=True)
