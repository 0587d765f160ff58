"""P1 — a batch of 50 videos, sandbox task time 2 s, concurrency 5.

Concurrency 5 is the RunningHub key's: the sandbox runs at most 5 tasks of the key at once and
rh-extend's global concurrency limit for the key has 5 slots. Both sides keep up to 10 videos in
flight (`max_parallel=10`; the script's `--parallel 10`) and hold one of the 5 slots from
submit to the end of polling, so the next video is uploaded while others generate.

rh-extend: one `extend_batch` run per dispatch — `task` (each video's chain inline, one task
run per video) and `subflow` (the default: a flow run per video) — against `prefect server
start` on PostgreSQL (SQLite serializes this many concurrent writers: 10 videos took 25–36 s on
SQLite vs 12 s on PostgreSQL here). Floor: `baseline_script`. Both poll every 0.1 s.
Ideal: ceil(50 / 5) × 2 s = 20 s. The targets are checked on the leanest dispatch (`task`);
the default's figures are reported beside them.
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
PARALLEL = 10
DISPATCHES = ("task", "subflow")
POLL = {"RH_EXTEND_POLL_INTERVAL_S": "0.1", "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.1"}


def _at(task: dict[str, Any], status: str) -> float:
    return next(float(h["at"]) for h in task["history"] if h["status"] == status)


def edges(tasks: list[dict[str, Any]], run: dict[str, Any]) -> tuple[float, float, float]:
    """Where a run's wall goes, from the sandbox's task history (same clock, same machine):
    start → first submit, first submit → last success, last success → the run's end."""
    mine = [t for t in tasks if run["started_at"] <= _at(t, "CREATE") <= run["ended_at"]]
    first = min(_at(t, "CREATE") for t in mine)
    last = max(_at(t, "SUCCESS") for t in mine)
    return first - run["started_at"], last - first, run["ended_at"] - last


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    count = 10 if quick else 50
    ideal = math.ceil(count / CONCURRENCY) * TASK_S
    clip = make_sample_clip(root / "clip.mp4", seconds=1.0, width=160, height=120, fps=12)
    walls = {name: Series() for name in (*DISPATCHES, "script")}
    cpus = {name: Series() for name in (*DISPATCHES, "script")}
    parts = {name: (Series(), Series(), Series()) for name in (*DISPATCHES, "script")}

    def note_edges(name: str, run: dict[str, Any]) -> None:
        for series, seconds in zip(parts[name], edges(st.tasks(), run), strict=True):
            series.add(seconds)

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
        floor_args += ["--concurrency", str(CONCURRENCY), "--parallel", str(PARALLEL)]
        floor_args += ["--poll-interval", "0.1", "--poll-max-interval", "0.1"]
        floor_args += ["--workdir", str(root / "floor")]
        # warm-up: registers the flows and creates the concurrency limit
        for dispatch in DISPATCHES:
            warm = [*flow_args, "--count", "2", "--dispatch", dispatch]
            run_json(warm, env, root / "p1-flow.log")
        for attempt in range(runs):
            floor = run_json([*floor_args, "--count", str(count)], env, root / "p1-floor.log")
            walls["script"].add(floor["wall_s"])
            cpus["script"].add(floor["cpu_s"])
            note_edges("script", floor)
            line = f"P1 run {attempt + 1}/{runs}: script {floor['wall_s']:.2f} s"
            for dispatch in DISPATCHES:
                args = [*flow_args, "--count", str(count), "--parallel", str(PARALLEL)]
                flow = run_json([*args, "--dispatch", dispatch], env, root / "p1-flow.log")
                walls[dispatch].add(flow["wall_s"])
                cpus[dispatch].add(flow["cpu_s"])
                note_edges(dispatch, flow)
                if flow["archived"] != count:
                    failures.append(f"run {attempt + 1} ({dispatch}): {flow['message']}")
                line += f", {dispatch} {flow['wall_s']:.2f} s"
            log(line)
        billed = len(st.ledger())
    lean, script = walls["task"].median, walls["script"].median
    vs_ideal, vs_floor = lean / ideal, lean / script
    sub = walls["subflow"]
    cpu_text = " / ".join(cpus[name].text() for name in ("task", "subflow", "script"))

    def parts_text(which: int) -> str:
        names = ("task", "subflow", "script")
        return " / ".join(f"{parts[name][which].median:.2f}" for name in names)

    return {
        "id": "P1",
        "title": f"batch of {count} videos, task {TASK_S:.0f} s, concurrency {CONCURRENCY}",
        "rows": [
            ("rh-extend `extend_batch`, dispatch `task` — wall", walls["task"].text()),
            ("rh-extend `extend_batch`, dispatch `subflow` (default) — wall", sub.text()),
            ("plain script — wall", walls["script"].text()),
            ("ideal", f"{ideal:.2f} s"),
            ("`task` / ideal; / script", f"{vs_ideal:.3f}; {vs_floor:.3f}"),
            ("`subflow` / ideal; / script", f"{sub.median / ideal:.3f}; {sub.median / script:.3f}"),
            ("script / ideal", f"{script / ideal:.3f}"),
            ("client CPU per batch: `task` / `subflow` / script", cpu_text),
            ("start → first submit, s (median): `task` / `subflow` / script", parts_text(0)),
            ("first submit → last success, s: `task` / `subflow` / script", parts_text(1)),
            ("last success → end, s: `task` / `subflow` / script", parts_text(2)),
            ("paid submits (all runs, incl. warm-up)", str(billed)),
        ],
        "checks": [
            ("wall ≤ 1.10 × ideal (dispatch `task`)", vs_ideal, 1.10, vs_ideal <= 1.10),
            ("wall ≤ 1.05 × script (dispatch `task`)", vs_floor, 1.05, vs_floor <= 1.05),
        ],
        "failures": failures,
        "raw": {
            name: {
                "wall": walls[name].values,
                "cpu": cpus[name].values,
                "edges": [series.values for series in parts[name]],
            }
            for name in walls
        },
    }
