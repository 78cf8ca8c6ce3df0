"""`scripts/bench`: every workload in one run → bench-results/*.json, summary.md, PNG plots, ratios.

Modes (see docs/performance.md for what each costs):
  default  fan-out 100/1,000 subscribers x 10/100/1,000 events/s on hub, raw, raw-asgi, naive and
           hub-before; end-to-end mutation point; query path at concurrency 1 and 32 (~12 min)
  --quick  every workload, tiny: fan-out 50 subscribers x 10/100 on hub, raw, naive; end to end;
           a 200-socket scale point; a short query path (~1.5 min; the smoke run of the test suite)
  --full   default + 5,000 subscribers + the 10,000-socket scale test (~25 min)
  --soak M only the soak: steady subscribers and publishing for M minutes
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import fanout, querypath, report, soak
from bench.servers import ROOT, infra


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small and short (smoke run)")
    mode.add_argument("--full", action="store_true", help="adds 5,000 subscribers and the 10,000-socket scale test")
    p.add_argument("--soak", type=float, metavar="MINUTES", help="run only the soak, for MINUTES")
    p.add_argument("--soak-subscribers", type=int, default=1000)
    p.add_argument("--soak-rate", type=float, default=20.0)
    p.add_argument("--targets", help="fan-out targets, comma-separated: hub,hub-before,raw,raw-asgi,naive")
    p.add_argument("--sizes", help="subscriber counts, comma-separated")
    p.add_argument("--rates", help="events per second, comma-separated")
    p.add_argument("--duration", type=float, help="seconds of publishing per fan-out point")
    p.add_argument("--scale", type=int, metavar="SOCKETS", help="run the scale test with this many sockets")
    p.add_argument("--budget", type=float, default=fanout.FanoutConfig.budget,
                   help="most deliveries one fan-out point asks for (longer points are shortened to it)")
    p.add_argument("--e2e-rate", type=float, default=5.0, help="commentAdd per second of the end-to-end point")
    p.add_argument("--generators", type=int, default=2, help="load-generator processes")
    p.add_argument("--skip", default="", help="workloads to skip: fanout,e2e,query")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        base: dict[str, Any] = {"targets": ["hub", "raw", "naive"], "sizes": [50], "rates": [10, 100],
                                "duration": 1.5, "query_duration": 1.0, "scale": 200}
    else:
        base = {"targets": ["hub", "hub-before", "raw", "raw-asgi", "naive"], "sizes": [100, 1000],
                "rates": [10, 100, 1000], "duration": 4.0, "query_duration": 5.0, "scale": None}
    if args.full:
        base.update(sizes=[100, 1000, 5000], scale=10_000)
    if args.targets:
        base["targets"] = args.targets.split(",")
    if args.sizes:
        base["sizes"] = [int(x) for x in args.sizes.split(",")]
    if args.rates:
        base["rates"] = [float(x) for x in args.rates.split(",")]
    if args.duration:
        base["duration"] = args.duration
    if args.scale:
        base["scale"] = args.scale
    return base


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = plan(args)
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = {
        "command": "scripts/bench " + " ".join(sys.argv[1:]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(), "load_start": [round(x, 2) for x in psutil.getloadavg()], "plan": settings,
    }
    began = time.monotonic()
    with infra(args.out / "logs") as servers:
        if args.soak:
            results["soak"] = await soak.run(servers, args.soak, args.soak_subscribers, args.soak_rate,
                                             interval=min(10.0, max(1.0, args.soak * 60 / 30)), log=log)
        else:
            if "fanout" not in skip:
                config = fanout.FanoutConfig(sizes=settings["sizes"], rates=settings["rates"],
                                             duration=settings["duration"], generators=args.generators,
                                             budget=args.budget)
                results["fanout"] = {"points": await fanout.run(servers, settings["targets"], config, log)}
            if "e2e" not in skip:
                results["e2e"] = await fanout.e2e(servers, max(settings["sizes"]), args.e2e_rate,
                                                  settings["duration"] * 2, args.generators, log)
            if settings["scale"]:
                results["scale"] = await fanout.scale(servers, ["hub", "raw"], settings["scale"],
                                                      max(args.generators, 4), log)
            if "query" not in skip:
                results["query"] = await querypath.run(servers, [1, 32], settings["query_duration"], log)
    results["elapsed_s"] = time.monotonic() - began
    results["load_end"] = [round(x, 2) for x in psutil.getloadavg()]
    report.write(args.out, results)
    return results


def print_ratios(results: dict[str, Any]) -> None:
    for row in report.ratios(results.get("fanout", {}).get("points", [])):
        parts = [f"{k[3:]} {row[k]:.2f}x (CPU/delivery {row.get('cpu_' + k[3:], 0):.2f}x)"
                 for k in row if k.startswith("vs_")]
        print(f"fan-out N={row['subscribers']:,} rate={row['rate']:g}/s: hub {row['hub']:,.0f} deliveries/s; "
              + ", ".join(parts))
    query = results.get("query")
    if query:
        for p in query["points"]:
            if p["target"] == "hub":
                bare = next(q for q in query["points"] if q["target"] == "bare" and q["query"] == p["query"]
                            and q["concurrency"] == p["concurrency"])
                print(f"query {p['query']} c={p['concurrency']}: hub {p['rps']:.0f} rps "
                      f"= {p['rps'] / bare['rps']:.2f}x bare")


if __name__ == "__main__":
    arguments = parse(None)
    outcome = asyncio.run(main(arguments))
    print_ratios(outcome)
    print(f"results in {arguments.out}/ (summary.md, *.json, *.png)")
