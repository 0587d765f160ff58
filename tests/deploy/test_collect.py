"""No paid result is lost: a served run SIGKILLed after its submit (a worker machine lost, an OOM
kill) leaves a billed task; `rh-extend collect` archives its result, byte for byte, never paying
again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rh_extend.local_servers import LocalServers, wait_for
from rh_extend.storage import Archive

RH_EXTEND = str(Path(sys.executable).with_name("rh-extend"))


def _flow_run_process(run_id: str) -> int | None:
    """The pid of the process executing flow run RUN_ID (its environment names the run)."""
    wanted = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_killed_runs_paid_result_is_archived_by_the_collector(
    served: Any, stack: LocalServers, sandbox: Any, clip: Path
) -> None:
    api = served.api
    before = sandbox.update_config()["run_seconds"]
    sandbox.update_config(run_seconds=6.0)
    try:
        key = f"{served.prefix}/collect/clip.mp4"
        stack.s3().upload_file(str(clip), stack.bucket, key)
        request = {
            "source": f"s3://{stack.bucket}/{key}",
            "model": "skyreels-v3-shot-switching",
            "prompt": "killed after its submit",
            "duration": 2,
        }
        deployment = served.deployments["extend-video"]
        run = api.post(
            f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"request": request}}
        )

        def running_task() -> str | None:
            for entry in sandbox.ledger():
                if (sandbox.task(entry["taskId"]) or {}).get("status") == "RUNNING":
                    return str(entry["taskId"])
            return None

        task_id = str(wait_for("the task to run", running_task, 90, 0.2))
        pid = wait_for("the run's process", lambda: _flow_run_process(run["id"]), 30, 0.2)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        crashed = api.wait_final(run["id"], timeout_s=60)
        assert crashed["state"]["type"] == "CRASHED", crashed["state"]

        wait_for("the task to end", lambda: sandbox.task(task_id)["status"] == "SUCCESS", 60, 0.2)
        collect = subprocess.run(
            [RH_EXTEND, "collect", "--min-age", "0", "--json"],
            env=served.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        archived_after = time.monotonic() - killed
    finally:
        sandbox.update_config(run_seconds=before)

    assert collect.returncode == 0, collect.stdout[-2000:] + collect.stderr[-3000:]
    summary = json.loads(collect.stdout.strip().splitlines()[-1])
    mine = [item for item in summary["items"] if item["task_id"] == task_id]
    assert [item["outcome"] for item in mine] == ["archived"]
    request_key = mine[0]["request_key"]
    store = Archive(stack.bucket, served.prefix, client=stack.s3())
    manifest = store.read_json(request_key, "manifest.json")
    assert manifest is not None and manifest["task_id"] == task_id
    assert manifest["collected"]["owner_flow_run"] == run["id"]
    archived = stack.s3().get_object(Bucket=stack.bucket, Key=store.key(request_key, "output.mp4"))
    produced = Path(sandbox.task(task_id)["output_path"]).read_bytes()  # the sandbox's own file
    assert _sha256(archived["Body"].read()) == _sha256(produced) == manifest["output"]["sha256"]
    billed = [e for e in sandbox.ledger() if e["taskId"] == task_id]
    assert len(billed) == 1 and sandbox.submits_received == len(sandbox.ledger())
    crash_events = [
        e
        for e in api.events("rh-extend.task.failed")
        if e["payload"]["task_id"] == task_id and e["payload"]["cause"] == "crashed"
    ]
    assert crash_events, "the runner's on_crashed hook reports the crash"
    print(
        f"\n(e) flow run {run['id']} SIGKILLed holding task {task_id}: archived by the collector "
        f"{archived_after:.1f} s after the kill ({manifest['output']['uri']}), 1 submit billed"
    )
