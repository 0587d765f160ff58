"""P5 — `rh-extend extend` start to its first RunningHub request, local Prefect server running.

Start = `time.time()` just before the process is spawned; first request = arrival time of the
first client request the sandbox receives (recorded by the request log around its app). The
local `prefect server start` (SQLite) has run the flow once before (warm); each run is a fresh
`rh-extend extend CLIP --model wan-2.7 --duration 2 --take LABEL --json` process.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Series, log
from benchmarks.servers import BIN, ROOT, PrefectServer, Stack
from rh_extend.media import make_sample_clip


def _cli(clip: Path, label: str, env: dict[str, str], log_path: Path) -> float:
    args = [str(BIN / "rh-extend"), "extend", str(clip), "--model", "wan-2.7", "--duration", "2"]
    with log_path.open("a") as err:
        started = time.time()
        done = subprocess.run(
            [*args, "--take", label, "--json"], env=env, cwd=ROOT, stdout=err, stderr=err
        )
    if done.returncode != 0:
        raise RuntimeError(f"rh-extend extend exited {done.returncode}; see {log_path}")
    return started


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    clip = make_sample_clip(root / "clip.mp4", seconds=1.0, width=160, height=120, fps=12)
    first, whole = Series(), Series()
    first_paths: set[str] = set()
    with (
        Stack(root, queue_seconds=0.0, run_seconds=0.5) as st,
        PrefectServer(root) as prefect,
    ):
        env = prefect.client_env(**st.env, RH_EXTEND_WORKDIR=str(root / "work"))
        env.update(RH_EXTEND_POLL_INTERVAL_S="0.1", RH_EXTEND_POLL_MAX_INTERVAL_S="0.2")
        _cli(clip, "warm-up", env, root / "p5.log")
        for attempt in range(runs):
            st.clear_requests()
            started = _cli(clip, f"p5-{attempt}", env, root / "p5.log")
            ended = time.time()
            seen = st.requests()
            first.add(seen[0][0] - started)
            whole.add(ended - started)
            first_paths.add(seen[0][2])
        log(f"P5: first request after {first.text()}")
    return {
        "id": "P5",
        "title": "`rh-extend extend` start to its first RunningHub request",
        "rows": [
            ("process start → first RunningHub request", first.text()),
            ("first request", ", ".join(sorted(first_paths))),
            ("whole command (2 s video, 0.5 s task)", whole.text()),
        ],
        "checks": [("≤ 3 s (worst run)", first.high, 3.0, first.high <= 3.0)],
        "failures": [],
        "raw": {"first": first.values},
    }
