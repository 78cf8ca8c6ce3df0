"""The benchmark harness runs (issue #9): `scripts/bench --quick` does every workload, tiny, and
writes its results. It is a smoke run, not a performance test: nothing here asserts speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_workload_and_writes_its_results(tmp_path: Path) -> None:
    # when the smoke run of the benchmark harness runs (its own Redis, store, hubs, baselines)
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    # then every workload wrote its results, the plots and the summary
    for name in ("fanout.json", "e2e.json", "scale.json", "query.json", "run.json", "summary.md",
                 "latency_cdf.png", "throughput_vs_subscribers.png", "query_rps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    # and the fan-out points of every target delivered everything, with no gap and no duplicate
    points = json.loads((tmp_path / "fanout.json").read_text())["points"]
    assert {p["target"] for p in points} == {"hub", "raw", "naive"}
    for point in points:
        assert point["subscribers"] == 50, point["target"]
        assert (point["gaps"], point["duplicates"]) == (0, 0), point["target"]
        if point["target"] != "naive":  # (naive may saturate on a loaded machine: that is its point)
            assert point["complete"] == 1.0, (point["target"], point["rate"], point["complete"])
    # the end-to-end point went through real mutations, the scale point reached every socket
    e2e = json.loads((tmp_path / "e2e.json").read_text())[0]
    assert e2e["complete"] == 1.0 and e2e["gaps"] == 0 and e2e["duplicates"] == 0
    for point in json.loads((tmp_path / "scale.json").read_text()):
        assert point["delivered"] == point["connections"] == 200, point["target"]
    # the query path answered the same JSON as the bare endpoint, without errors
    query = json.loads((tmp_path / "query.json").read_text())
    assert all(query["same_json"].values()), query["same_json"]
    assert all(p["errors"] == 0 and p["rps"] > 0 for p in query["points"])
    # and the ratios were printed
    assert "fan-out N=50 rate=100/s: hub" in run.stdout and "x bare" in run.stdout, run.stdout[-2000:]
