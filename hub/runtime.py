"""The process-wide runtime: settings, store, bus and event log, owned by the app lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from hub.bus import Bus
from hub.embedded import EmbeddedStore, data_store
from hub.events import EventLog
from hub.presence import PresenceStore
from hub.settings import Settings
from hub.store import Store

log = logging.getLogger("hub")


@dataclass
class Hub:
    settings: Settings
    store: Store
    bus: Bus
    events: EventLog
    embedded: EmbeddedStore | None = None
    presence: PresenceStore | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings) -> Hub:
        embedded = None
        url = settings.mongodb_url
        if not url:
            embedded = data_store(settings.data_dir).start()
            url = embedded.url
            log.info("embedded store on %s (data in %s)", url, settings.data_dir)
        store = Store(url, settings.mongodb_db, timeout=settings.mongodb_timeout_s,
                      select_timeout=settings.mongodb_select_timeout_s)
        await store.ensure_indexes()
        bus = Bus(settings.redis_url, queue_size=settings.subscriber_queue)
        await bus.connect()
        events = EventLog(
            store, bus, timedelta(days=settings.event_retention_days),
            relay_age=settings.outbox_age_s, drop_publish=settings.test_drop_publish,
        )
        events.start(settings.outbox_interval_s, settings.prune_interval_s)
        presence = PresenceStore(
            settings.redis_url, bus, ttl=settings.presence_ttl_s, flap=settings.presence_flap_s,
            sweep_interval=settings.presence_sweep_s,
        )
        presence.start()
        hub = cls(settings=settings, store=store, bus=bus, events=events, embedded=embedded,
                  presence=presence)
        if settings.webhooks_enabled:  # webhook delivery worker (hub/webhooks.py)
            from hub.webhooks import WebhookWorker

            worker = WebhookWorker(store, settings)
            worker.start()
            hub.extras["webhooks"] = worker
        return hub

    async def stop(self) -> None:
        worker = self.extras.pop("webhooks", None)
        if worker is not None:
            await worker.stop()  # type: ignore[attr-defined]
        if self.presence is not None:
            await self.presence.stop()
        await self.events.stop()
        await self.bus.disconnect()
        await self.store.close()
        if self.embedded is not None:
            self.embedded.stop()
