"""P4 — status calls and detection lag for a long task vs fixed 5 s polling.

A 600 s task (20 s queued + 580 s running) on a clock scaled by K = 0.02 (12 s of real time);
every poll setting is scaled by the same K: rh-extend's defaults (first interval 5 s, ×1.5 up to
30 s, jitter up to RH_EXTEND_RETRY_INITIAL_S = 1 s) become 0.1 s, 0.6 s and 0.02 s; the floor is
the plain script polling every 5 s × K = 0.1 s. rh-extend runs the whole `extend_video` flow.
The sandbox counts each task's status calls (`POST /openapi/v2/query`, by taskId) and stamps
SUCCESS; detection lag = arrival of the status call that saw SUCCESS − that stamp. Lag and task
time are reported on the unscaled clock (real seconds / K).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import Series, log, run_json
from benchmarks.servers import PrefectServer, Stack
from rh_extend.media import make_sample_clip

K = 0.02
QUEUE_S, RUN_S = 20.0, 580.0
TASK_S = QUEUE_S + RUN_S
FIXED_S = 5.0


def _calls_and_lag(st: Stack, task_ids: list[str]) -> tuple[list[int], list[float]]:
    seen = st.requests()
    calls, lags = [], []
    for task_id in task_ids:
        times = [t for t, _, path, tid in seen if path == "/openapi/v2/query" and tid == task_id]
        history = st.task(task_id)["history"]
        success = next(h["at"] for h in history if h["status"] == "SUCCESS")
        calls.append(len(times))
        lags.append((max(times) - success) / K)
    return calls, lags


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    clip = make_sample_clip(root / "clip.mp4", seconds=1.0, width=160, height=120, fps=12)
    flow_calls, floor_calls, flow_lag, floor_lag = Series(), Series(), Series(), Series()
    with (
        Stack(
            root, queue_seconds=QUEUE_S, run_seconds=RUN_S, time_scale=K, concurrency_limit=5
        ) as st,
        PrefectServer(root) as prefect,
    ):
        env = prefect.client_env(
            **st.env,
            RH_EXTEND_WORKDIR=str(root / "work"),
            RH_EXTEND_POLL_INTERVAL_S=f"{5.0 * K:g}",
            RH_EXTEND_POLL_MAX_INTERVAL_S=f"{30.0 * K:g}",
            RH_EXTEND_RETRY_INITIAL_S=f"{1.0 * K:g}",
            RH_EXTEND_POLL_TIMEOUT_S=f"{3 * TASK_S * K:g}",
        )
        flow = run_json(
            ["-m", "benchmarks.drive_flow", "sequential", str(clip), "--count", str(runs)],
            env,
            root / "p4-flow.log",
        )
        floor = run_json(
            [
                *("-m", "benchmarks.baseline_script", str(clip), "--json", "--count", str(runs)),
                *("--poll-interval", f"{FIXED_S * K:g}", "--poll-max-interval", f"{FIXED_S * K:g}"),
                *("--workdir", str(root / "floor")),
            ],
            env,
            root / "p4-floor.log",
        )
        calls, lags = _calls_and_lag(st, [i["task_id"] for i in flow["items"]])
        for c, lag in zip(calls, lags, strict=True):
            flow_calls.add(c)
            flow_lag.add(lag)
        calls, lags = _calls_and_lag(st, [i["task_id"] for i in floor["items"]])
        for c, lag in zip(calls, lags, strict=True):
            floor_calls.add(c)
            floor_lag.add(lag)
    log(f"P4: calls {flow_calls.text('')} vs {floor_calls.text('')}; lag {flow_lag.text()}")
    fewer = floor_calls.median / flow_calls.median
    lag_limit = 0.05 * TASK_S + 2.0
    return {
        "id": "P4",
        "title": f"a {TASK_S:.0f} s task (clock ×{K}), rh-extend's polling vs fixed 5 s",
        "rows": [
            ("status calls per task: rh-extend", flow_calls.text("", 0)),
            ("status calls per task: fixed 5 s", floor_calls.text("", 0)),
            ("fewer calls (median ratio)", f"{fewer:.2f} ×"),
            ("detection lag: rh-extend (unscaled)", flow_lag.text()),
            ("detection lag: fixed 5 s (unscaled)", floor_lag.text()),
            ("lag limit: 5 % of task time + 2 s", f"{lag_limit:.1f} s"),
        ],
        "checks": [
            ("≥ 4 × fewer calls", fewer, 4.0, fewer >= 4.0),
            (
                "lag ≤ 5 % of task time + 2 s (worst run)",
                flow_lag.high,
                lag_limit,
                flow_lag.high <= lag_limit,
            ),
        ],
        "failures": [],
        "raw": {"flow_calls": flow_calls.values, "flow_lag": flow_lag.values},
    }
