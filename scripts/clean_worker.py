"""Clean-worker check: a worker with only Python and Prefect runs `extend-video` from git.

    make clean-worker        # or: .venv/bin/python scripts/clean_worker.py [--keep]

Everything runs on 127.0.0.1 in a temp dir and is stopped at the end:

1. a bare git repository holding this checkout's HEAD as branch `deployed` (the check runs what
   is committed: uncommitted changes are not in it),
2. a fresh venv with a current pip and `prefect==3.8.8`: neither rh-extend nor its other
   dependencies (docs/operations.md's first steps on a new worker machine),
3. `prefect server start` (SQLite), the RunningHub sandbox and moto's S3 server,
4. the S3Bucket block `rh-extend-results` as Prefect's result storage (scripts' side of
   `python -m rh_extend.deployments.result_storage`),
5. the `video-extend` process pool and `prefect deploy --all` from prefect.yaml, with
   RH_EXTEND_GIT_REPOSITORY=file://…/rh-extend.git and RH_EXTEND_GIT_BRANCH=deployed,
6. `prefect worker start --pool video-extend` from the fresh venv, in an empty directory,
7. two runs of `extend-video`, one after the other: the first one's pull steps clone the
   repository and install requirements.txt into the worker's venv; the second finds them there.

It exits non-zero unless the deployments recorded the repository and branch, both runs completed
and archived their video, the sandbox billed one submit per run, the runs' results are in S3 and
this process (another "machine") reads them back, and rh-extend is still not installed in the
worker's venv: the runs imported it from their clones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scale_out import Api, prefect_cli

from rh_extend.deployments.definitions import GIT_BRANCH_VAR, GIT_REPOSITORY_VAR
from rh_extend.deployments.result_storage import BLOCK_NAME, FOLDER, SETTING, block_slug
from rh_extend.local_servers import (
    LocalServers,
    PrefectServer,
    Process,
    ServerDied,
    clean_env,
    exit_on_sigterm,
    local_servers,
    start_process,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "deployed"
PREFIX = "clean-worker"
MODEL = "skyreels-v3-shot-switching"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
FIRST_RUN_TIMEOUT_S = 900  # the first run installs the dependencies
RUN_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 900
PIP = "pip>=25"
# Anything that would let the worker's Python see this checkout or its venv.
LEAKS = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")


def log(message: str) -> None:
    print(f"[clean-worker {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_cmd(args: list[str], timeout_s: float = 300, **kwargs: Any) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bare_repository(root: Path) -> str:
    """This checkout's HEAD as branch `deployed` of a bare repository; its file:// URL."""
    if run_cmd(["git", "-C", str(ROOT), "status", "--porcelain"]).strip():
        log("note: the working tree has uncommitted changes; the worker runs HEAD without them")
    bare = root / "rh-extend.git"
    run_cmd(["git", "init", "--quiet", "--bare", str(bare)])
    run_cmd(["git", "-C", str(ROOT), "push", "--quiet", str(bare), f"HEAD:refs/heads/{BRANCH}"])
    run_cmd(["git", "-C", str(bare), "symbolic-ref", "HEAD", f"refs/heads/{BRANCH}"])
    head = run_cmd(["git", "-C", str(bare), "rev-parse", "--short", BRANCH]).strip()
    log(f"bare repository {bare} at {head}")
    return bare.as_uri()


def fresh_venv(path: Path) -> Path:
    """A venv with prefect==3.8.8 and nothing else of ours; its python."""
    started = time.monotonic()
    run_cmd([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # A current pip first: the pip that venv bundles (23.x) backtracks for minutes between
    # boto3 and prefect-aws's aiobotocore where pip 25+ resolves requirements.txt in seconds.
    run_cmd([*pip, "--upgrade", PIP], timeout_s=INSTALL_TIMEOUT_S, env=worker_base_env())
    run_cmd([*pip, "prefect==3.8.8"], timeout_s=INSTALL_TIMEOUT_S, env=worker_base_env())
    log(f"fresh venv {path} with {PIP} and prefect==3.8.8 in {time.monotonic() - started:.1f} s")
    return python


def importable(python: Path, module: str) -> bool:
    """Whether the venv of `python` can import `module` (run beside the venv, not from this
    checkout, whose folder `python -c` would put first on sys.path)."""
    probe = [str(python), "-c", f"import {module}"]
    beside = python.parents[2]
    done = subprocess.run(probe, capture_output=True, env=worker_base_env(), cwd=beside)
    return done.returncode == 0


def worker_base_env(**extra: str) -> dict[str, str]:
    """A clean environment whose PATH holds nothing of this checkout's venv."""
    env = {k: v for k, v in clean_env(**extra).items() if k not in LEAKS}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def save_result_block(client_env: dict[str, str]) -> str:
    """The S3Bucket result storage block, saved from this checkout (a deployer's machine)."""
    code = (
        "import sys; from rh_extend.deployments.result_storage import save_s3_result_storage as s;"
        " print(s(sys.argv[1], sys.argv[2]))"
    )
    folder = f"{PREFIX}/{FOLDER}"
    bucket = client_env["RH_EXTEND_S3_BUCKET"]
    slug = run_cmd([sys.executable, "-c", code, bucket, folder], env=client_env).strip()
    assert slug == block_slug(BLOCK_NAME), slug
    log(f"result storage: {slug} = s3://{bucket}/{folder}/")
    return slug


def deploy(api: Api, client_env: dict[str, str], repository: str) -> dict[str, dict[str, Any]]:
    """The pool and `prefect deploy --all` from prefect.yaml; checks the recorded pull steps."""
    env = {**client_env, GIT_REPOSITORY_VAR: repository, GIT_BRANCH_VAR: BRANCH}
    prefect_cli(env, "work-pool", "create", "video-extend", "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--all")
    deployments = {d["name"]: d for d in api.post("/deployments/filter", {"limit": 50})}
    api.post(f"/deployments/{deployments['extend-inbox']['id']}/pause_deployment")
    clone = deployments["extend-video"]["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    if (clone["repository"], clone["branch"]) != (repository, BRANCH):
        raise SystemExit(f"prefect deploy recorded {clone}, not {repository} at {BRANCH}")
    log(f"deployed {sorted(deployments)}; pull: git_clone {repository} branch {BRANCH}")
    return deployments


def start_worker(python: Path, env: dict[str, str], root: Path) -> Process:
    """`prefect worker start` of the fresh venv, in an empty directory."""
    empty = root / "worker-machine"
    empty.mkdir()
    prefect = str(python.with_name("prefect"))
    args = [prefect, "worker", "start", "--pool", "video-extend", "--name", "clean-worker",
            "--type", "process"]  # fmt: skip
    worker = start_process("clean-worker", args, env, root / "worker.log", cwd=empty)
    worker.wait_for("the worker to poll", lambda: "started" in worker.text().lower(), 120, 0.5)
    log(f"worker polling from the empty directory {empty}")
    return worker


def extend_once(
    api: Api, stack: LocalServers, worker: Process, deployment: dict[str, Any], n: int
) -> dict[str, Any]:
    """One run of extend-video on a clip of its own; the finished run and its wall time."""
    source = f"s3://{stack.bucket}/{PREFIX}-in/clip-{n}.mp4"
    request = {"source": source, "model": MODEL, "prompt": f"clean worker {n}", "duration": 2}
    started = time.monotonic()
    run = api.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"request": request}, "name": f"clean-worker-{n}"},
    )

    def final() -> dict[str, Any] | None:
        worker.check_alive()
        current: dict[str, Any] = api.get(f"/flow_runs/{run['id']}")
        return current if (current.get("state") or {}).get("type") in FINAL else None

    timeout_s = FIRST_RUN_TIMEOUT_S if n == 1 else RUN_TIMEOUT_S
    done: dict[str, Any] = wait_for(f"run {n} to finish", final, timeout_s, 1.0)
    done["wall_s"] = round(time.monotonic() - started, 1)
    done["pull"] = pull_step_lines(api, run["id"])
    log(f"run {n}: {done['state']['type']} in {done['wall_s']} s")
    return done


def pull_step_lines(api: Api, run_id: str) -> list[str]:
    """The run's log lines about its deployment steps, with their times."""
    body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    lines = []
    for entry in api.post("/logs/filter", body):
        if "step" in entry["message"]:
            lines.append(f"{entry['timestamp'][11:23]} {entry['message']}")
    return lines


READ_RESULTS = """
import json, sys
from prefect import get_client
with get_client(sync_client=True) as client:
    for run_id in sys.argv[1:]:
        result = client.read_flow_run(run_id).state.result()
        print(json.dumps(result.model_dump(mode="json")))
"""


def read_results(
    client_env: dict[str, str], root: Path, run_ids: list[str]
) -> list[dict[str, Any]]:
    """The runs' results as another machine reads them: a fresh PREFECT_HOME, S3 through the
    result storage block recorded in each run's state."""
    env = {**client_env, "PREFECT_HOME": str(root / "reader-home")}
    out = run_cmd([sys.executable, "-c", READ_RESULTS, *run_ids], env=env)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def check(
    stack: LocalServers, python: Path, runs: list[dict[str, Any]], results: list[dict[str, Any]]
) -> list[str]:
    """What went wrong (empty: nothing)."""
    problems = [
        f"run {r['name']} ended {r['state']['type']}: {r['state'].get('message')}"
        for r in runs
        if r["state"]["type"] != "COMPLETED"
    ]
    s3 = stack.s3()
    for result in results:
        uri = urlparse(result.get("output_uri") or "")
        if result.get("status") != "succeeded" or not uri.path:
            problems.append(f"result {result} is not a succeeded archive")
            continue
        s3.head_object(Bucket=uri.netloc, Key=uri.path.lstrip("/"))
    if len(results) != len(runs):
        problems.append(f"{len(results)} results read back for {len(runs)} runs")
    ledger = stack.sandbox.ledger()
    if len(ledger) != len(runs):
        problems.append(f"the sandbox billed {len(ledger)} submits for {len(runs)} runs")
    if importable(python, "rh_extend"):
        problems.append("rh_extend became importable in the worker's venv (installed?)")
    if not importable(python, "prefect_aws"):
        problems.append("the pull step did not install requirements.txt (no prefect_aws)")
    return problems


def stored_results(stack: LocalServers) -> list[str]:
    listing = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=f"{PREFIX}/{FOLDER}/")
    return [item["Key"] for item in listing.get("Contents", [])]


def run(root: Path) -> dict[str, Any]:
    from rh_extend.media import make_sample_clip

    started = time.monotonic()
    repository = bare_repository(root)
    python = fresh_venv(root / "worker-venv")
    if importable(python, "rh_extend") or importable(python, "av"):
        raise SystemExit("the fresh venv already sees rh_extend or av: not a clean worker")
    with ExitStack() as running:
        server = running.enter_context(PrefectServer(root / "prefect-home"))
        stack = running.enter_context(local_servers(queue_seconds=0.5, run_seconds=1.0))
        api = running.enter_context(Api(server.api_url))
        log(f"prefect server {server.api_url}, sandbox {stack.sandbox.base_url}")
        client_env = server.client_env(**stack.env, RH_EXTEND_S3_PREFIX=PREFIX)
        slug = save_result_block(client_env)
        deployments = deploy(api, client_env, repository)
        worker_env = worker_base_env(
            **stack.env,
            PREFECT_API_URL=server.api_url,
            PREFECT_HOME=str(root / "worker-home"),
            PREFECT_WORKER_QUERY_SECONDS="1",
            RH_EXTEND_S3_PREFIX=PREFIX,
            RH_EXTEND_WORKDIR=str(root / "worker-work"),
            RH_EXTEND_POLL_INTERVAL_S="0.5",
            RH_EXTEND_POLL_MAX_INTERVAL_S="1",
            **{SETTING: slug},
        )
        worker = running.enter_context(start_worker(python, worker_env, root))
        clip = make_sample_clip(root / "clip.mp4", seconds=3.0)
        for n in (1, 2):
            stack.s3().upload_file(str(clip), stack.bucket, f"{PREFIX}-in/clip-{n}.mp4")
        runs = [extend_once(api, stack, worker, deployments["extend-video"], n) for n in (1, 2)]
        results = read_results(client_env, root, [r["id"] for r in runs])
        problems = check(stack, python, runs, results)
        return {
            "repository": repository,
            "branch": BRANCH,
            "runs": [
                {
                    "name": r["name"],
                    "state": r["state"]["type"],
                    "wall_s": r["wall_s"],
                    "pull_steps": r["pull"],
                }
                for r in runs
            ],
            "results_read_back": [
                {"output_uri": r["output_uri"], "status": r["status"]} for r in results
            ],
            "result_objects_in_s3": stored_results(stack),
            "ledger_submits": len(stack.sandbox.ledger()),
            "rh_extend_installed_in_worker_venv": importable(python, "rh_extend"),
            "total_seconds": round(time.monotonic() - started, 1),
            "problems": problems,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    exit_on_sigterm()  # a stop by signal still stops the servers and the worker
    root = Path(tempfile.mkdtemp(prefix="rh-extend-clean-worker-"))
    log(f"working in {root}")
    try:
        report = run(root)
    except (TimeoutError, ServerDied) as exc:
        raise SystemExit(f"clean-worker: {exc}") from None
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if report["problems"]:
        print("clean-worker: FAILED", file=sys.stderr)
        return 1
    print("clean-worker: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
