"""Runs rh-extend's flows in a fresh process and prints one JSON object of timings.

    python -m benchmarks.drive_flow batch CLIP --count 50 --parallel 10
    python -m benchmarks.drive_flow sequential CLIP --count 6

`batch`: one `extend_batch` run over a JSONL manifest of COUNT items (each its own `take`, so
each is a new request). `sequential`: COUNT `extend_video` runs one after another in this
process (the first one pays the process's warm-up). Both call the flows as `rh-extend extend` and
`rh-extend batch` do: direct runs, without heartbeats, on the process's one Prefect API client,
tagged at creation (rh_extend/flows/direct.py). Needs PREFECT_API_URL and the stack's
environment (see benchmarks/servers.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def batch(opts: argparse.Namespace) -> dict[str, Any]:
    from rh_extend.flows.extend_batch import extend_batch

    run = uuid.uuid4().hex[:8]
    manifest = Path(opts.workdir) / f"manifest-{run}.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {
            "source": str(opts.clip),
            "model": opts.model,
            "params": {"duration": opts.duration, "take": f"{run}-{i}"},
        }
        for i in range(opts.count)
    ]
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    started, started_at = time.monotonic(), time.time()
    state = extend_batch(
        manifest=str(manifest),
        max_parallel=opts.parallel,
        dispatch=opts.dispatch,
        return_state=True,
    )
    wall = time.monotonic() - started
    summary = state.result(raise_on_failure=False)
    items = getattr(summary, "items", [])
    return {
        "wall_s": wall,
        "started_at": started_at,
        "ended_at": started_at + wall,
        "state": state.name,
        "message": state.message,
        "archived": sum(1 for i in items if i.status == "archived"),
        "items": [{"seconds": i.seconds, "status": i.status, "cause": i.cause} for i in items],
    }


def sequential(opts: argparse.Namespace) -> dict[str, Any]:
    from rh_extend.flows.direct import direct_run
    from rh_extend.flows.extend_video import extend_video
    from rh_extend.request import ExtendRequest

    run = uuid.uuid4().hex[:8]
    items = []
    for i in range(opts.count):
        started = time.monotonic()
        with direct_run(opts.model):
            request = ExtendRequest(
                source=str(opts.clip), model=opts.model, duration=opts.duration, take=f"{run}-{i}"
            )
            result = extend_video(request)
        items.append(
            {
                "seconds": time.monotonic() - started,
                "task_id": result.task_id,
                "success_seen_at": None,
            }
        )
    return {"items": items}


def _import_engines() -> None:
    """What a flow's first call imports, imported before the clock starts as the script
    imports httpx and boto3: the clock measures the batch, not the process's start (P5
    measures that)."""
    for module in (
        "prefect.flow_engine",
        "prefect.task_engine",
        "prefect.utilities.visualization",
    ):
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("batch", "sequential"))
    parser.add_argument("clip", type=Path)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--dispatch", default="subflow", choices=("subflow", "task"))
    parser.add_argument("--model", default="wan-2.7")
    parser.add_argument("--duration", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/rh-bench-flow")
    opts = parser.parse_args(argv)
    from rh_extend.flows.direct import direct_runs
    from rh_extend.settings import load_settings
    from rh_extend.tasks.common import warm_up

    _import_engines()
    warm_up(load_settings())  # the process's clients, built before the clock starts (as the script)
    with direct_runs():  # as `rh-extend batch`; runs created inside use the client opened here
        result = batch(opts) if opts.mode == "batch" else sequential(opts)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["max_rss_mb"] = usage.ru_maxrss / 1024
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
