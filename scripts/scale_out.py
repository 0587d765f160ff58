"""Scale-out check: Prefect server on PostgreSQL, two process workers, batches spread over both.

    make scale-out                  # or: .venv/bin/python scripts/scale_out.py [--items 12]

Everything runs on 127.0.0.1 in a temp dir and is stopped at the end:

1. `prefect server start` on a throwaway PostgreSQL cluster (initdb + pg_ctl; as the `postgres`
   user when run as root),
2. the RunningHub sandbox and moto's S3 server (in this process),
3. (all three from `rh_extend.local_servers`),
4. the `video-extend` process work pool, and `prefect deploy --all` from prefect.local.yaml:
   the workers run this checkout as it is, uncommitted changes included, like the tests (the
   git pull of prefect.yaml, a clone and a requirements check per run, is `make clean-worker`'s
   subject; here it would only add that cost to every one of the 26 runs),
5. two `prefect worker start --pool video-extend` processes, each with its own workdir (two
   "machines"),
6. two runs of the `extend-batch` deployment over the same manifest of N videos, started at once,
   with `dispatch=deployment`: every item becomes a run of `extend-video` that either worker may
   take, and every video is requested twice (the second batch races the first).

It then reports how many item runs each worker executed and the sandbox's billing ledger, and
exits non-zero unless both workers took items and every request was paid exactly once.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from rh_extend.deployments.definitions import LOCAL_YAML
from rh_extend.local_servers import (
    LocalServers,
    PrefectServer,
    Process,
    ServerDied,
    exit_on_sigterm,
    local_servers,
    start_process,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "skyreels-v3-shot-switching"
PREFECT_CLI_TIMEOUT_S = 600


def log(message: str) -> None:
    print(f"[scale-out {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prefect_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PREFECT_CLI_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise SystemExit(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.http.post(path, json=body if body is not None else {})
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()


def run(items: int, root: Path) -> dict[str, Any]:
    started = time.monotonic()
    with ExitStack() as running:
        server = running.enter_context(PrefectServer(root / "prefect-home", postgres=True))
        log(f"prefect server on {server.database_url} healthy after {server.startup_s:.1f} s")
        stack = running.enter_context(local_servers(queue_seconds=0.5, run_seconds=2.0))
        log(f"sandbox {stack.sandbox.base_url}, S3 {stack.s3_endpoint}")
        api = running.enter_context(Api(server.api_url))
        client_env = server.client_env(
            **stack.env,
            PREFECT_LOCAL_STORAGE_PATH=str(root / "results"),  # "shared result storage"
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            RH_EXTEND_S3_PREFIX="scale-out",
            RH_EXTEND_POLL_INTERVAL_S="0.5",
            RH_EXTEND_POLL_MAX_INTERVAL_S="1",
        )
        deployments = deploy(api, client_env)
        workers = {
            name: running.enter_context(start_worker(name, client_env, root))
            for name in ("worker-a", "worker-b")
        }
        for worker in workers.values():
            worker.wait_for(f"{worker.name} to poll", partial(polling, worker), 90, 0.5)
        log("two workers polling the video-extend pool")
        manifest = upload_manifest(stack, root, items)
        return race_two_batches(items, manifest, api, stack, deployments, workers, started)


def polling(worker: Process) -> bool:
    return "started" in worker.text().lower()


def deploy(api: Api, client_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The process work pool and `prefect deploy --all` of this checkout; the inbox schedule
    paused."""
    prefect_cli(client_env, "work-pool", "create", "video-extend", "--type", "process")
    prefect_cli(client_env, "--no-prompt", "deploy", "--all", "--prefect-file", LOCAL_YAML)
    deployments = {d["name"]: d for d in api.post("/deployments/filter", {"limit": 50})}
    log(f"deployed from {LOCAL_YAML}: {sorted(deployments)}")
    assert {"extend-video", "extend-inbox", "extend-batch"} <= set(deployments)
    automations = api.post("/automations/filter", {})
    assert any("rh-extend.video.arrived" in json.dumps(a) for a in automations)
    api.post(f"/deployments/{deployments['extend-inbox']['id']}/pause_deployment")
    return deployments


def start_worker(name: str, client_env: dict[str, str], root: Path) -> Process:
    """A process worker of the video-extend pool with a workdir of its own (a "machine")."""
    env = {**client_env, "RH_EXTEND_WORKDIR": str(root / name)}
    args = [
        str(BIN / "prefect"), "worker", "start", "--pool", "video-extend",
        "--name", name, "--type", "process", "--limit", "6",
    ]  # fmt: skip
    return start_process(name, args, env, root / f"{name}.log", cwd=ROOT)


def upload_manifest(stack: LocalServers, root: Path, items: int) -> str:
    """`items` copies of a sample clip in the local bucket, and a manifest of them; its URI."""
    from rh_extend.media import make_sample_clip

    s3 = stack.s3()
    clip = make_sample_clip(root / "clip.mp4", seconds=3.0)
    lines = []
    for n in range(items):
        key = f"scale-in/clip-{n:02d}.mp4"
        s3.upload_file(str(clip), stack.bucket, key)
        lines.append({"source": f"s3://{stack.bucket}/{key}", "prompt": f"scale-out item {n:02d}"})
    body = "\n".join(json.dumps(line) for line in lines).encode()
    s3.put_object(Bucket=stack.bucket, Key="scale-in/manifest.jsonl", Body=body)
    return f"s3://{stack.bucket}/scale-in/manifest.jsonl"


def race_two_batches(
    items: int,
    manifest: str,
    api: Api,
    stack: LocalServers,
    deployments: dict[str, dict[str, Any]],
    workers: dict[str, Process],
    started: float,
) -> dict[str, Any]:
    """Two batches over the same manifest at once; the report of who ran what and who paid."""
    batch_started = time.monotonic()
    parameters = {
        "manifest": manifest,
        "model": MODEL,
        "params": {"duration": 2},
        "dispatch": "deployment",
        "max_parallel": items,
        "item_timeout_s": 900,
    }
    batches = [
        api.post(
            f"/deployments/{deployments['extend-batch']['id']}/create_flow_run",
            {"parameters": parameters, "name": f"scale-out-batch-{label}"},
        )
        for label in ("a", "b")
    ]
    log(f"two batches of {items} started: {[b['id'] for b in batches]}")

    def finished() -> list[dict[str, Any]] | None:
        for worker in workers.values():
            worker.check_alive()
        runs = [api.get(f"/flow_runs/{b['id']}") for b in batches]
        states = [(r.get("state") or {}).get("type") for r in runs]
        final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
        return runs if all(s in final for s in states) else None

    batch_runs = wait_for("both batches to finish", finished, 1200, 2.0)
    batch_s = time.monotonic() - batch_started

    children = api.post(
        "/flow_runs/filter",
        {
            "flow_runs": {"deployment_id": {"any_": [deployments["extend-video"]["id"]]}},
            "limit": 200,
        },
    )
    ran_by: dict[str, str] = {}
    for name, worker in workers.items():
        for run_id in re.findall(r"submitting flow run '([0-9a-f-]{36})'", worker.text()):
            ran_by[run_id] = name
    per_worker = Counter(ran_by.get(c["id"], "?") for c in children)
    batch_by_worker = {b["id"]: ran_by.get(b["id"], "?") for b in batch_runs}
    states = Counter(c["state"]["type"] for c in children)
    ledger = stack.sandbox.ledger()
    per_prompt = Counter(entry["body"].get("prompt") for entry in ledger)
    outcomes: Counter[str] = Counter()
    for b in batch_runs:
        message = b["state"]["message"] or ""
        for status in ("archived", "reused", "in progress elsewhere", "failed"):
            found = re.search(rf"(\d+) {status}", message)
            outcomes[status] += int(found.group(1)) if found else 0
    report = {
        "items_per_batch": items,
        "batches": [
            {
                "id": b["id"],
                "state": b["state"]["type"],
                "message": b["state"]["message"],
                "ran_on": batch_by_worker[b["id"]],
            }
            for b in batch_runs
        ],
        "item_runs": len(children),
        "item_runs_per_worker": dict(per_worker),
        "item_run_states": dict(states),
        "outcomes_over_both_batches": dict(outcomes),
        "ledger_submits": len(ledger),
        "ledger_distinct_requests": len(per_prompt),
        "ledger_max_submits_per_request": max(per_prompt.values()) if per_prompt else 0,
        "batch_seconds": round(batch_s, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "database": "postgresql",
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12, help="videos per batch (>= 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    exit_on_sigterm()  # a stop by signal still stops the servers and workers
    root = Path(tempfile.mkdtemp(prefix="rh-extend-scale-"))
    log(f"working in {root}")
    try:
        report = run(max(10, args.items), root)
    except (TimeoutError, ServerDied) as exc:
        raise SystemExit(f"scale-out: {exc}") from None
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    per_worker = report["item_runs_per_worker"]
    problems = []
    if not (per_worker.get("worker-a") and per_worker.get("worker-b")):
        problems.append("the item runs were not spread over both workers")
    if report["ledger_submits"] != report["items_per_batch"]:
        problems.append("ledger submits != number of distinct requests")
    if report["ledger_max_submits_per_request"] != 1:
        problems.append("a request was paid more than once")
    if report["outcomes_over_both_batches"].get("failed"):
        problems.append("some items failed")
    for problem in problems:
        log(f"FAIL: {problem}")
    if not problems:
        log("OK: items spread over both workers, every request paid exactly once")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
