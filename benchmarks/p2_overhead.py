"""P2 — one video end to end: rh-extend's `extend_video` vs the same calls in the plain script.

A warm local Prefect server (`prefect server start`), measured twice: on PostgreSQL (the
production database; the target is checked here) and on SQLite (Prefect's default for a
laptop, reported beside it: its single writer makes concurrent API calls wait). Each side runs
RUNS + 1 videos one after another in one process; the first (process warm-up: imports, client
setup, flow registration) is left out, so the medians compare steady-state videos. Both poll every
0.1 s; the sandbox task takes 2 s. Overhead = median(rh-extend) − median(script). rh-extend
runs as `rh-extend extend` does (benchmarks/drive_flow.py: a direct run, no heartbeats).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import Series, log, run_json
from benchmarks.servers import PrefectServer, Stack
from rh_extend.media import make_sample_clip

TASK_S = 2.0
POLL = {"RH_EXTEND_POLL_INTERVAL_S": "0.1", "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.1"}


def _one(root: Path, runs: int, postgres: bool) -> tuple[Series, Series, float, float]:
    clip = make_sample_clip(root / "clip.mp4", seconds=1.0, width=160, height=120, fps=12)
    flow, floor = Series(), Series()
    with (
        Stack(root, queue_seconds=0.0, run_seconds=TASK_S, concurrency_limit=5) as st,
        PrefectServer(root, postgres=postgres) as prefect,
    ):
        env = prefect.client_env(**st.env, **POLL, RH_EXTEND_WORKDIR=str(root / "work"))
        count = str(runs + 1)
        flow_args = ["-m", "benchmarks.drive_flow", "sequential", str(clip), "--count"]
        # a throwaway run so the server has seen the flow (the "warm" server)
        run_json([*flow_args, "1"], env, root / "p2-flow.log")
        flow_items = run_json([*flow_args, count], env, root / "p2-flow.log")["items"]
        floor_items = run_json(
            [
                *("-m", "benchmarks.baseline_script", str(clip), "--json", "--count", count),
                *("--poll-interval", "0.1", "--poll-max-interval", "0.1"),
                *("--workdir", str(root / "floor")),
            ],
            env,
            root / "p2-floor.log",
        )["items"]
    for item in flow_items[1:]:
        flow.add(item["seconds"])
    for item in floor_items[1:]:
        floor.add(item["seconds"])
    return flow, floor, flow_items[0]["seconds"], floor_items[0]["seconds"]


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    rows: list[tuple[str, str]] = []
    checks: list[tuple[str, float, float, bool]] = []
    raw: dict[str, Any] = {}
    root.chmod(0o755)  # PostgreSQL's own user must reach its data dir below
    for database, postgres in (("PostgreSQL", True), ("SQLite", False)):
        where = root / database.lower()
        where.mkdir()
        flow, floor, first_flow, first_floor = _one(where, runs, postgres)
        overhead = flow.median - floor.median
        log(f"P2 {database}: rh-extend {flow.text()}, script {floor.text()}")
        rows += [
            (f"{database}: rh-extend `extend_video`, per video", flow.text()),
            (f"{database}: plain script, per video", floor.text()),
            (f"{database}: overhead (difference of medians)", f"{overhead:.2f} s"),
            (f"{database}: first video in a fresh process, rh-extend / script",
             f"{first_flow:.2f} s / {first_floor:.2f} s"),
        ]  # fmt: skip
        if postgres:
            checks.append(
                (f"overhead ≤ 0.3 s per video ({database})", overhead, 0.3, overhead <= 0.3)
            )
        raw[database] = {"flow": flow.values, "floor": floor.values}
    return {
        "id": "P2",
        "title": "one video end to end, warm local Prefect server",
        "rows": rows,
        "checks": checks,
        "failures": [],
        "raw": raw,
    }
