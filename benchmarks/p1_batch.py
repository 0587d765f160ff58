"""P1 — a batch of 50 videos, sandbox task time 2 s, concurrency 5.

rh-extend: one `extend_batch` run (`dispatch="subflow"`, `max_parallel=5`) with the RunningHub
key's Prefect global concurrency limit at 5 slots, against `prefect server start` on PostgreSQL
(SQLite serializes this many concurrent writers: 10 videos took 25–36 s on SQLite vs 12 s on
PostgreSQL here). Floor: `baseline_script` with 5 videos at a time. Both poll every 0.1 s.
Ideal: ceil(50 / 5) × 2 s = 20 s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.common import Series, log, run_json
from benchmarks.servers import PrefectServer, Stack
from rh_extend.media import make_sample_clip

TASK_S = 2.0
CONCURRENCY = 5
POLL = {"RH_EXTEND_POLL_INTERVAL_S": "0.1", "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.1"}


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    count = 10 if quick else 50
    ideal = math.ceil(count / CONCURRENCY) * TASK_S
    clip = make_sample_clip(root / "clip.mp4", seconds=1.0, width=160, height=120, fps=12)
    flow_wall, floor_wall, flow_cpu, floor_cpu = Series(), Series(), Series(), Series()
    failures: list[str] = []
    with (
        Stack(root, queue_seconds=0.0, run_seconds=TASK_S, concurrency_limit=CONCURRENCY) as st,
        PrefectServer(root, postgres=True) as prefect,
    ):
        log(f"P1: prefect server on PostgreSQL healthy in {prefect.startup_s:.1f} s")
        env = prefect.client_env(
            **st.env,
            **POLL,
            RH_EXTEND_WORKDIR=str(root / "work"),
            RH_EXTEND_CONCURRENCY_LIMIT=str(CONCURRENCY),
        )
        flow_args = ["-m", "benchmarks.drive_flow", "batch", str(clip), "--workdir", str(root)]
        floor_args = ["-m", "benchmarks.baseline_script", str(clip), "--json"]
        floor_args += ["--concurrency", str(CONCURRENCY), "--poll-interval", "0.1"]
        floor_args += ["--poll-max-interval", "0.1", "--workdir", str(root / "floor")]
        # warm-up: registers the flows and creates the concurrency limit
        run_json([*flow_args, "--count", "2", "--parallel", "2"], env, root / "p1-flow.log")
        for attempt in range(runs):
            floor = run_json([*floor_args, "--count", str(count)], env, root / "p1-floor.log")
            floor_wall.add(floor["wall_s"])
            floor_cpu.add(floor["cpu_s"])
            flow = run_json(
                [*flow_args, "--count", str(count), "--parallel", str(CONCURRENCY)],
                env,
                root / "p1-flow.log",
            )
            flow_wall.add(flow["wall_s"])
            flow_cpu.add(flow["cpu_s"])
            if flow["archived"] != count:
                failures.append(f"run {attempt + 1}: {flow['message']}")
            log(
                f"P1 run {attempt + 1}/{runs}: rh-extend {flow['wall_s']:.2f} s, "
                f"script {floor['wall_s']:.2f} s"
            )
        billed = len(st.ledger())
    vs_ideal = flow_wall.median / ideal
    vs_floor = flow_wall.median / floor_wall.median
    return {
        "id": "P1",
        "title": f"batch of {count} videos, task {TASK_S:.0f} s, concurrency {CONCURRENCY}",
        "rows": [
            ("rh-extend `extend_batch` wall", flow_wall.text()),
            ("plain script wall", floor_wall.text()),
            ("ideal", f"{ideal:.2f} s"),
            ("rh-extend / ideal", f"{vs_ideal:.3f}"),
            ("rh-extend / script", f"{vs_floor:.3f}"),
            ("script / ideal", f"{floor_wall.median / ideal:.3f}"),
            ("client CPU per batch: rh-extend / script", f"{flow_cpu.text()} / {floor_cpu.text()}"),
            ("paid submits (all runs, incl. warm-up)", str(billed)),
        ],
        "checks": [
            ("wall ≤ 1.10 × ideal", vs_ideal, 1.10, vs_ideal <= 1.10),
            ("wall ≤ 1.05 × script", vs_floor, 1.05, vs_floor <= 1.05),
        ],
        "failures": failures,
        "raw": {
            "flow_wall": flow_wall.values,
            "floor_wall": floor_wall.values,
            "flow_cpu": flow_cpu.values,
            "floor_cpu": floor_cpu.values,
        },
    }
