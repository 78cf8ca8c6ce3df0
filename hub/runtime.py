"""The process-wide runtime: settings, store, bus and event log, owned by the app lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from hub.bus import Bus
from hub.embedded import EmbeddedStore, data_store
from hub.events import EventLog
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
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings) -> Hub:
        embedded = None
        url = settings.mongodb_url
        if not url:
            embedded = data_store(settings.data_dir).start()
            url = embedded.url
            log.info("embedded store on %s (data in %s)", url, settings.data_dir)
        store = Store(url, settings.mongodb_db)
        await store.ensure_indexes()
        bus = Bus(settings.redis_url, queue_size=settings.subscriber_queue)
        await bus.connect()
        events = EventLog(store, bus, timedelta(days=settings.event_retention_days))
        events.start(settings.outbox_interval_s)
        return cls(settings=settings, store=store, bus=bus, events=events, embedded=embedded)

    async def stop(self) -> None:
        await self.events.stop()
        await self.bus.disconnect()
        await self.store.close()
        if self.embedded is not None:
            self.embedded.stop()
