"""Results of a run: `bench-results/*.json`, `summary.md` and PNG plots, plus the printed ratios."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {name: _version(name) for name in ("strawberry-graphql", "graphql-core", "starlette", "uvicorn",
                                                  "websockets", "uvloop", "redis", "pymongo")}
    return {"cpus": os.cpu_count(), "cpu_model": model, "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def point_of(points: list[dict[str, Any]], target: str, n: int, rate: float) -> dict[str, Any] | None:
    for p in points:
        if p["target"] == target and p["subscribers"] == n and p["rate"] == rate:
            return p
    return None


def ratios(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hub deliveries/s over each baseline's, per (subscribers, rate) both ran."""
    out = []
    for p in points:
        if p["target"] != "hub":
            continue
        row: dict[str, Any] = {"subscribers": p["subscribers"], "rate": p["rate"], "hub": p["deliveries_per_s"]}
        for other in ("raw", "raw-asgi", "naive", "hub-before"):
            q = point_of(points, other, p["subscribers"], p["rate"])
            if q is not None and q["deliveries_per_s"]:
                row[other] = q["deliveries_per_s"]
                row[f"vs_{other}"] = p["deliveries_per_s"] / q["deliveries_per_s"]
                if p.get("cpu_s_per_1000") and q.get("cpu_s_per_1000"):  # CPU per delivery: other ÷ hub
                    row[f"cpu_{other}"] = q["cpu_s_per_1000"] / p["cpu_s_per_1000"]
        out.append(row)
    return out


def plots(out: Path, results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    points = results.get("fanout", {}).get("points", [])
    if points:
        sizes = sorted({p["subscribers"] for p in points})
        rates = sorted({p["rate"] for p in points})
        n = 1000 if 1000 in sizes else sizes[-1]
        rate = 100 if 100 in rates else rates[-1]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for target in sorted({p["target"] for p in points}):
            p = point_of(points, target, n, rate)
            if p and p.get("cdf_ms"):
                ax.plot(p["cdf_ms"], [i / 100 for i in range(101)], label=target)
        ax.set_xscale("log")
        ax.set_xlabel("publish → subscriber latency (ms, log)")
        ax.set_ylabel("fraction of deliveries")
        ax.set_title(f"Latency CDF, {n} subscribers x {rate:g} events/s (2 processes)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "latency_cdf.png", dpi=110)
        plt.close(fig)
        made.append("latency_cdf.png")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for target in sorted({p["target"] for p in points}):
            xs = [s for s in sizes if any(p["target"] == target and p["subscribers"] == s for p in points)]
            ys = [max(p["deliveries_per_s"] for p in points if p["target"] == target and p["subscribers"] == s)
                  for s in xs]
            ax.plot(xs, ys, marker="o", label=target)
        ax.set_xscale("log")
        ax.set_xlabel("subscribers (2 processes)")
        ax.set_ylabel("deliveries/s (best rate)")
        ax.set_title("Fan-out throughput vs subscribers")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput_vs_subscribers.png", dpi=110)
        plt.close(fig)
        made.append("throughput_vs_subscribers.png")
    query = results.get("query", {}).get("points", [])
    if query:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        labels = sorted({(p["query"], p["concurrency"]) for p in query})
        width = 0.38
        for i, target in enumerate(("hub", "bare")):
            ys = [next((p["rps"] for p in query if p["target"] == target and (p["query"], p["concurrency"]) == lab), 0)
                  for lab in labels]
            ax.bar([k + (i - 0.5) * width for k in range(len(labels))], ys, width, label=target)
        ax.set_xticks(range(len(labels)), [f"{q} c={c}" for q, c in labels])
        ax.set_ylabel("requests/s")
        ax.set_title("Query path: hub vs bare Starlette (same store reads)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "query_rps.png", dpi=110)
        plt.close(fig)
        made.append("query_rps.png")
    soak = results.get("soak")
    if soak and soak.get("samples"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ts = [s["t"] / 60 for s in soak["samples"]]
        ax.plot(ts, [s["rss_mib"] for s in soak["samples"]], label="RSS of both hubs (MiB)")
        ax.plot(ts, [s.get("hub_asyncio_tasks", 0) / 10 for s in soak["samples"]], label="asyncio tasks / 10")
        ax.set_xlabel("minutes")
        ax.set_title("Soak")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "soak.png", dpi=110)
        plt.close(fig)
        made.append("soak.png")
    return made


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmark results", "",
        f"Run `{results['command']}` on {results['started']} ({results['elapsed_s'] / 60:.1f} min). "
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Python {m['python']}; "
        f"the load generators, Redis, the store and every server share these cores. "
        f"Load average at start {results['load_start']}, at end {results['load_end']} "
        "(other work on the machine shows there).", "",
    ]
    fan = results.get("fanout")
    if fan:
        lines += [
            "## Fan-out", "",
            "N subscribers of one case over 2 processes on one Redis; events published at a fixed rate straight "
            "onto the bus (hub: the hub's own event format on the case's channel, appended to the store in the "
            "background; baselines: the same JSON on their channel). Latency is publish → subscriber. "
            "`complete` = delivered / expected; `CPU s/1k` = server CPU seconds per 1,000 deliveries; "
            "`RSS/conn` = server RSS growth per subscribed connection; `srv/cli CPU` = cores used by servers / "
            "load generators.", "",
            "| target | N | rate/s | sent/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | gaps | dups | complete "
            "| CPU s/1k | RSS/conn KiB | srv/cli CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in fan["points"]:
            lines.append(
                f"| {p['target']} | {p['subscribers']:,} | {p['rate']:g} | {p['achieved_rate']:.0f} "
                f"| {p['deliveries_per_s']:,.0f} | {_fmt(p.get('p50_ms'))} | {_fmt(p.get('p99_ms'))} "
                f"| {_fmt(p.get('p999_ms'))} | {p['gaps']} | {p['duplicates']} | {p['complete']:.3f} "
                f"| {_fmt(p.get('cpu_s_per_1000'), 3)} | {p['rss_per_conn_kib']:.0f} "
                f"| {p['server_cpu_util']:.2f} / {p['client_cpu_util']:.2f} |")
        rows = ratios(fan["points"])
        if rows:
            lines += ["", "### Ratios, same N and rate", "",
                      "Throughput: hub deliveries/s ÷ the baseline's. CPU: the baseline's server CPU per delivery ÷ "
                      "the hub's (how many times cheaper a hub delivery is; < 1: dearer). Throughput ratios are only "
                      "meaningful where the baseline is saturated (rates below saturation deliver everything).", "",
                      "| N | rate/s | hub/s | ÷ raw | ÷ raw-asgi | ÷ naive | ÷ hub-before | CPU vs raw | CPU vs naive "
                      "| CPU vs hub-before |", "|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                lines.append(f"| {r['subscribers']:,} | {r['rate']:g} | {r['hub']:,.0f} | {_fmt(r.get('vs_raw'), 2)} "
                             f"| {_fmt(r.get('vs_raw-asgi'), 2)} | {_fmt(r.get('vs_naive'), 2)} "
                             f"| {_fmt(r.get('vs_hub-before'), 2)} | {_fmt(r.get('cpu_raw'), 2)} "
                             f"| {_fmt(r.get('cpu_naive'), 2)} | {_fmt(r.get('cpu_hub-before'), 2)} |")
    e2e = results.get("e2e")
    if e2e:
        lines += ["", "## End to end through a mutation", "",
                  "`commentAdd` over HTTP (GraphQL, store transaction, publish) → every subscriber; the store "
                  "(SecantusDB) bounds the rate.", "",
                  "| N | asked/s | sent/s | p50 ms | p99 ms | gaps | dups | complete |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in e2e:
            lines.append(f"| {p['subscribers']:,} | {p['rate']:g} | {p['achieved_rate']:.1f} | {_fmt(p.get('p50_ms'))} "
                         f"| {_fmt(p.get('p99_ms'))} | {p['gaps']} | {p['duplicates']} | {p['complete']:.3f} |")
    scale = results.get("scale")
    if scale:
        lines += ["", "## Scale: one event to every socket", "",
                  "| target | sockets | delivered | last delivery ms | RSS/conn KiB |", "|---|---|---|---|---|"]
        for p in scale:
            lines.append(f"| {p['target']} | {p['connections']:,} | {p['delivered']:,} | "
                         f"{p['last_delivery_s'] * 1000:.0f} | {p['rss_per_conn_kib']:.0f} |")
    query = results.get("query")
    if query:
        lines += ["", "## Query path (2 processes, round-robin)", "",
                  f"Same JSON from hub and bare endpoint: {query['same_json']}.", "",
                  "| query | concurrency | target | rps | p50 ms | p99 ms | errors | server CPU ms/req |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in query["points"]:
            lines.append(f"| {p['query']} | {p['concurrency']} | {p['target']} | {p['rps']:,.0f} | {_fmt(p['p50_ms'])} "
                         f"| {_fmt(p['p99_ms'])} | {p['errors']} | {_fmt(p['server_cpu_ms_per_request'], 2)} |")
        lines += ["", "| query | concurrency | hub ÷ bare (rps) |", "|---|---|---|"]
        for p in query["points"]:
            if p["target"] == "hub":
                bare = next(q for q in query["points"] if q["target"] == "bare" and q["query"] == p["query"]
                            and q["concurrency"] == p["concurrency"])
                lines.append(f"| {p['query']} | {p['concurrency']} | {p['rps'] / bare['rps']:.2f} |")
    soak = results.get("soak")
    if soak:
        g = soak["growth"]
        d = soak["delivery"]
        lines += ["", "## Soak", "",
                  f"{soak['subscribers']:,} subscribers, {soak['rate']:g} events/s for {soak['minutes']:g} min: "
                  f"delivered {d['delivered']:,}, gaps {d['gaps']}, duplicates {d['duplicates']}, "
                  f"errors {d['errors']}, "
                  f"p99 {_fmt(d.get('p99_ms'))} ms. Growth per minute: RSS {g['rss_mib_per_min']:+.2f} MiB, "
                  f"asyncio tasks {g['asyncio_tasks_per_min']:+.1f}, fan-out backlog {g['backlog_per_min']:+.1f} "
                  f"(RSS {g['rss_mib_first_last'][0]:.1f} → {g['rss_mib_first_last'][1]:.1f} MiB, tasks "
                  f"{g['asyncio_tasks_first_last'][0]} → {g['asyncio_tasks_first_last'][1]})."]
    if results.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in results["plots"]]
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for key in ("fanout", "e2e", "scale", "query", "soak"):
        if results.get(key) is not None:
            (out / f"{key}.json").write_text(json.dumps(results[key], indent=1, default=str))
    results["plots"] = plots(out, results)
    (out / "run.json").write_text(json.dumps({k: v for k, v in results.items()
                                              if k not in ("fanout", "e2e", "scale", "query", "soak")},
                                             indent=1, default=str))
    (out / "summary.md").write_text(markdown(results))
