"""What the workdir holds after many runs, successes and failures mixed, and after the sweep.

    .venv/bin/python scripts/workdir_footprint.py [--runs 50] [--retention-s 20]

Everything runs on 127.0.0.1 in a temp dir and is stopped at the end: a throwaway `prefect server
start`, the RunningHub sandbox and moto's S3 server. RUNS `extend_video` runs go one after another
into one workdir, five kinds in turn (faults injected into the sandbox, matched on each run's
prompt):

- `local`: a local source (never copied), archived;
- `s3`: an s3:// source (staged into the workdir), archived;
- `s3-retry`: the same, its first download answered HTTP 500: the download task retries, archived;
- `fail-task`: RunningHub fails the task: the run fails after staging, before any download;
- `refused`: a foreign `output.mp4` waits in the archive: the run fails after the download.

It prints the workdir's files and bytes after the runs, then waits out RETENTION_S and prints
them again after the sweep (`rh_extend.workdir.sweep`, as a run's start calls it). Code without
that module (before the bounded workdir) gets the first figures only: run it with
`PYTHONPATH=<a checkout of the older commit>` to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rh_extend.local_servers import PrefectServer, environment, local_servers

MODEL = "skyreels-v3-shot-switching"  # the shortest output: input + 2 s
PREFIX = "footprint"
KINDS = ("local", "s3", "s3-retry", "fail-task", "refused")


def log(message: str) -> None:
    print(f"[footprint {time.strftime('%H:%M:%S')}] {message}", flush=True)


def footprint(root: Path) -> tuple[int, int, Counter[str]]:
    """(files, bytes, files per top-level folder) under ROOT."""
    files = [p for p in root.rglob("*") if p.is_file()]
    per_folder = Counter(p.relative_to(root).parts[0] for p in files)
    return len(files), sum(p.stat().st_size for p in files), per_folder


def describe(root: Path) -> str:
    files, size, per_folder = footprint(root)
    folders = "".join(f"; {name}/: {count}" for name, count in sorted(per_folder.items()))
    return f"{files} files, {size} bytes ({size / 2**20:.2f} MiB){folders}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_run(index: int, kind: str, clip: Path, s3_source: str, stack: Any) -> str:
    """Prepare the run's fault, run it; its outcome as a word."""
    from rh_extend.flows.extend_video import extend_video
    from rh_extend.request import ExtendRequest
    from rh_extend.request_keys import request_key
    from rh_extend.storage import Archive

    prompt = f"footprint run {index} <{kind}>"
    source = str(clip) if kind == "local" else s3_source
    request = ExtendRequest(source=source, model=MODEL, prompt=prompt, duration=2)
    match = {"prompt_contains": prompt}
    if kind == "s3-retry":
        stack.sandbox.add_fault("http_500_html", route="download", times=1, match=match)
    elif kind == "fail-task":
        stack.sandbox.add_fault("fail_task", route="task", times=1, match=match)
    elif kind == "refused":
        key = request_key(_sha256(clip), MODEL, request.params())
        foreign = clip.parent / "foreign.bin"
        foreign.write_bytes(f"not run {index}'s video".encode())
        archive = Archive(stack.bucket, PREFIX, client=stack.s3())
        archive.store_file(key, "output.mp4", foreign, sha256=_sha256(foreign), content_type="x")
    try:
        extend_video(request)
    except Exception as exc:
        return f"failed ({type(exc).__name__})"
    return "archived"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--retention-s", type=float, default=20.0)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rh-footprint-"))
    try:
        measure(tmp, opts.runs, opts.retention_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def measure(tmp: Path, runs: int, retention_s: float) -> None:
    work = tmp / "work"
    with PrefectServer(tmp / "prefect", startup_timeout_s=120) as server:
        # This process is the server's client: set before anything imports prefect.
        os.environ["PREFECT_API_URL"] = server.api_url
        os.environ["PREFECT_HOME"] = str(tmp / "client")
        import rh_extend
        from rh_extend.media import make_sample_clip

        log(f"rh_extend from {Path(rh_extend.__file__).parent}; workdir {work}")
        clip = make_sample_clip(tmp / "clip.mp4", seconds=3.0)
        with local_servers(queue_seconds=0.2, run_seconds=0.5) as stack:
            env = {
                **stack.env,
                "RH_EXTEND_WORKDIR": str(work),
                "RH_EXTEND_S3_PREFIX": PREFIX,
                "RH_EXTEND_WORKDIR_RETENTION_H": str(retention_s / 3600),
                "RH_EXTEND_POLL_INTERVAL_S": "0.2",
                "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.5",
                "RH_EXTEND_RETRY_ATTEMPTS": "1",  # a download's HTTP 500 reaches its task's retry
            }
            with environment(env):
                stack.s3().upload_file(str(clip), stack.bucket, f"{PREFIX}/sources/clip.mp4")
                s3_source = f"s3://{stack.bucket}/{PREFIX}/sources/clip.mp4"
                outcomes: Counter[str] = Counter()
                started = time.monotonic()
                for index in range(runs):
                    kind = KINDS[index % len(KINDS)]
                    outcome = one_run(index, kind, clip, s3_source, stack)
                    outcomes[f"{kind}: {outcome}"] += 1
                took = time.monotonic() - started
                log(f"{runs} runs in {took:.0f} s: {dict(sorted(outcomes.items()))}")
                log(f"billed submits: {len(stack.sandbox.ledger())}")
                log(f"after {runs} runs: {describe(work)}")
                sweep_after(work, retention_s)


def sweep_after(work: Path, retention_s: float) -> None:
    import rh_extend

    # not an import attempt: an editable install would find the module in its own checkout
    if not (Path(rh_extend.__file__).parent / "workdir.py").exists():
        log("no rh_extend/workdir.py in this code: nothing sweeps the workdir")
        return
    from rh_extend import workdir

    newest = max((p.stat().st_mtime for p in work.rglob("*")), default=0.0)
    wait_s = max(0.0, newest + retention_s + 1 - time.time())
    log(f"waiting {wait_s:.0f} s for the retention ({retention_s:g} s) to pass")
    time.sleep(wait_s)
    removal = workdir.sweep(work, retention_s)
    log(f"the sweep removed {len(removal.folders)} run folders: {removal.describe()}")
    log(f"after the sweep: {describe(work)}")


if __name__ == "__main__":
    sys.exit(main())
