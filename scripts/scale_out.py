"""Scale-out check: Prefect server on PostgreSQL, two process workers, batches spread over both.

    make scale-out                  # or: .venv/bin/python scripts/scale_out.py [--items 12]

Everything runs on 127.0.0.1 in a temp dir and is stopped at the end:

1. a PostgreSQL cluster (initdb + pg_ctl; as the `postgres` user when run as root),
2. the RunningHub sandbox and moto's S3 server (in this process),
3. `prefect server start` on that PostgreSQL database,
4. the `video-extend` process work pool, and `prefect deploy --all` from prefect.yaml,
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
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "skyreels-v3-shot-switching"


def log(message: str) -> None:
    print(f"[scale-out {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise SystemExit(
            f"PostgreSQL's {name} not found: apt-get install -y postgresql (or put its bin on PATH)"
        )
    return found


class Postgres:
    """A throwaway cluster listening on 127.0.0.1 only, trust auth for the local user."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.port = free_port()
        self.log = root / "pg.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            root.chmod(0o755)

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> str:
        self.data.mkdir()
        if self.as_user:
            shutil.chown(self.data, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "prefect", "--auth=trust", "-E", "UTF8"
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c max_connections=200"
        )
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )
        self._run(
            pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "prefect", "prefect"
        )
        return f"postgresql+asyncpg://prefect@127.0.0.1:{self.port}/prefect"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as handle:
            self.proc = subprocess.Popen(
                args, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def prefect_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def post(self, path: str, body: Any = None) -> Any:
        response = self.http.post(path, json=body if body is not None else {})
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()


def run(items: int, root: Path) -> dict[str, Any]:
    from rh_extend.localstack import local_stack
    from rh_extend.media import make_sample_clip

    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    pg = Postgres(root)
    procs: list[Proc] = []
    started = time.monotonic()
    try:
        db_url = pg.start()
        log(f"PostgreSQL on 127.0.0.1:{pg.port} ({pg_bin('postgres')})")
        with local_stack(queue_seconds=0.5, run_seconds=2.0) as stack:
            log(f"sandbox {stack.sandbox.base_url}, S3 {stack.s3_endpoint}")
            port = free_port()
            api_url = f"http://127.0.0.1:{port}/api"
            home = root / "prefect-home"
            server_env = {
                **clean,
                **quiet,
                "PREFECT_HOME": str(home),
                "PREFECT_API_DATABASE_CONNECTION_URL": db_url,
                "PREFECT_UI_ENABLED": "false",
            }
            server = Proc(
                "prefect server",
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                server_env,
                root / "server.log",
            )  # fmt: skip
            procs.append(server)
            api = Api(api_url)

            def healthy() -> bool:
                server.alive()
                try:
                    return api.http.get("/health", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for("prefect server", healthy, 120)
            log(f"prefect server on PostgreSQL healthy after {time.monotonic() - started:.1f} s")

            client_env = {
                **clean,
                **quiet,
                **stack.env,
                "PREFECT_API_URL": api_url,
                "PREFECT_HOME": str(home),
                "PREFECT_LOCAL_STORAGE_PATH": str(root / "results"),  # "shared result storage"
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                "RH_EXTEND_S3_PREFIX": "scale-out",
                "RH_EXTEND_POLL_INTERVAL_S": "0.5",
                "RH_EXTEND_POLL_MAX_INTERVAL_S": "1",
            }
            prefect_cli(client_env, "work-pool", "create", "video-extend", "--type", "process")
            prefect_cli(client_env, "--no-prompt", "deploy", "--all")
            deployments = {d["name"]: d for d in api.post("/deployments/filter", {"limit": 50})}
            log(f"deployed from prefect.yaml: {sorted(deployments)}")
            assert {"extend-video", "extend-inbox", "extend-batch"} <= set(deployments)
            automations = api.post("/automations/filter", {})
            assert any("rh-extend.video.arrived" in json.dumps(a) for a in automations)
            api.post(f"/deployments/{deployments['extend-inbox']['id']}/pause_deployment")

            workers = {}
            for name in ("worker-a", "worker-b"):
                env = {**client_env, "RH_EXTEND_WORKDIR": str(root / name)}
                args = [
                    str(BIN / "prefect"), "worker", "start", "--pool", "video-extend",
                    "--name", name, "--type", "process", "--limit", "6",
                ]  # fmt: skip
                workers[name] = Proc(name, args, env, root / f"{name}.log")
                procs.append(workers[name])
            wait_for(
                "both workers to poll",
                lambda: all(w.alive() and "started" in w.text().lower() for w in workers.values()),
                90,
            )
            log("two workers polling the video-extend pool")

            s3 = stack.s3()
            clip = make_sample_clip(root / "clip.mp4", seconds=3.0)
            lines = []
            for n in range(items):
                key = f"scale-in/clip-{n:02d}.mp4"
                s3.upload_file(str(clip), stack.bucket, key)
                lines.append(
                    {"source": f"s3://{stack.bucket}/{key}", "prompt": f"scale-out item {n:02d}"}
                )
            manifest = f"s3://{stack.bucket}/scale-in/manifest.jsonl"
            body = "\n".join(json.dumps(line) for line in lines).encode()
            s3.put_object(Bucket=stack.bucket, Key="scale-in/manifest.jsonl", Body=body)

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
                    worker.alive()
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
    finally:
        for proc in reversed(procs):
            proc.stop()
        pg.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12, help="videos per batch (>= 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rh-extend-scale-"))
    log(f"working in {root}")
    try:
        report = run(max(10, args.items), root)
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
