"""Soak: steady publishing to steady subscribers for N minutes on 2 hub processes; samples RSS,
asyncio tasks, fan-out followers and backlog, and reports their growth (a leak shows as a slope)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.fanout import hub_target, publish_at, summarize, warm_up
from bench.servers import Infra, LoadGenerators, rss_bytes, scrape

GAUGES = ("hub_asyncio_tasks", "hub_fanout_followers", "hub_fanout_backlog", "hub_subscriptions",
          "hub_ws_connections", "hub_events_delivered_total")


def _slope(ts: list[float], values: list[float]) -> float:
    """Least-squares growth per minute."""
    if len(ts) < 2:
        return 0.0
    return float(np.polyfit(np.array(ts) / 60, np.array(values), 1)[0])


async def run(infra: Infra, minutes: float, subscribers: int, rate: float, interval: float,
              log: Callable[[str], None]) -> dict[str, Any]:
    target = await hub_target(infra, "hub")
    gens = LoadGenerators(2)
    samples: list[dict[str, Any]] = []
    try:
        opened, failed = gens.open(target.specs(0, subscribers))
        live = await warm_up(target, gens, opened)
        log(f"soak: {opened} subscribers ({failed} failed, live={live}), {rate:g} events/s for {minutes:g} min")
        started = time.time()
        publisher = asyncio.create_task(publish_at(target, 0, rate, minutes * 60))
        while not publisher.done():
            sample: dict[str, Any] = {"t": time.time() - started, "rss_mib": rss_bytes(target.pids) / 2**20}
            for server in target.servers:
                for name, value in scrape(server.url).items():
                    if name in GAUGES:
                        sample[name] = sample.get(name, 0) + value
            status = gens.ask({"cmd": "status"})
            sample["received"] = sum(a["received"] for a in status)
            sample["open"] = sum(a["open"] for a in status)
            samples.append(sample)
            log(f"  soak t={sample['t']:.0f}s RSS {sample['rss_mib']:.1f} MiB, "
                f"tasks {sample.get('hub_asyncio_tasks')}, "
                f"followers {sample.get('hub_fanout_followers')}, backlog {sample.get('hub_fanout_backlog')}")
            await asyncio.wait([publisher], timeout=interval)
        published = publisher.result()
        await asyncio.sleep(2)
        result = summarize(gens.ask({"cmd": "report"}), 0, started)
        result.pop("cdf_ms", None)
        steady = samples[1:] or samples  # the first sample still has start-up allocations settling
        ts = [s["t"] for s in steady]
        growth = {
            "rss_mib_per_min": _slope(ts, [s["rss_mib"] for s in steady]),
            "asyncio_tasks_per_min": _slope(ts, [s.get("hub_asyncio_tasks", 0) for s in steady]),
            "backlog_per_min": _slope(ts, [s.get("hub_fanout_backlog", 0) for s in steady]),
            "rss_mib_first_last": [steady[0]["rss_mib"], steady[-1]["rss_mib"]],
            "asyncio_tasks_first_last": [steady[0].get("hub_asyncio_tasks"), steady[-1].get("hub_asyncio_tasks")],
        }
        log(f"soak: growth {growth}; delivered {result['delivered']} of {published['sent'] * opened}, "
            f"gaps {result['gaps']} dups {result['duplicates']} errors {result['errors']}")
        return {"minutes": minutes, "subscribers": opened, "rate": rate, "published": published,
                "delivery": result, "growth": growth, "samples": samples}
    finally:
        gens.close()
        await target.close()
        target.stop()
