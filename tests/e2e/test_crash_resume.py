"""A run killed (SIGKILL) while it polls resumes the same task when run again: paid once.

The installed `rh-extend` command runs as a subprocess against the session's Prefect API, the
sandbox and the S3 server. The test waits until the submit is billed, its taskId is recorded in
`submission.json` and the run has queried the task's status, then kills the process without any
chance to clean up, and runs the same command again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rh_extend.local_servers import LocalServers, start_process

pytestmark = pytest.mark.usefixtures("prefect_api")

RH_EXTEND = str(Path(sys.executable).with_name("rh-extend"))
MODEL = "skyreels-v3-shot-switching"
# The task's RUNNING phase gets this much longer (a `slow` task fault, fixed when the task is
# accepted): long enough that the first run is surely still polling when it is killed.
EXTRA_RUN_S = 8.0
WAIT_S = 90.0


def _hits(sandbox: Any, rule_id: int) -> int:
    return sum(rule["hits"] for rule in sandbox.faults() if rule["id"] == rule_id)


def _submission_records(stack: LocalServers, prefix: str) -> dict[str, dict[str, Any]]:
    """Every `<prefix>/<request_key>/submission.json`, by request key."""
    s3 = stack.s3()
    listing = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"{prefix}/")
    records: dict[str, dict[str, Any]] = {}
    for obj in listing.get("Contents", []):
        key = obj["Key"]
        if key.endswith("/submission.json"):
            body = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            records[key.split("/")[-2]] = json.loads(body)
    return records


def _recorded_task_id(stack: LocalServers, prefix: str) -> tuple[str, str] | None:
    for request_key, record in _submission_records(stack, prefix).items():
        if record.get("task_id"):
            return request_key, str(record["task_id"])
    return None


def test_killed_while_polling_resumes_the_same_task(
    clip: Path, stack: LocalServers, sandbox: Any, s3_prefix: str, prefect_api: str, tmp_path: Path
) -> None:
    prompt = f"crash-resume {s3_prefix}"
    sandbox.add_fault(
        "slow", route="task", match={"prompt_contains": prompt}, params={"seconds": EXTRA_RUN_S}
    )
    # A zero-second `slow` rule changes nothing but counts the status queries of this task.
    polls = sandbox.add_fault(
        "slow", route="query", times=None, match={"prompt_contains": prompt}, params={"seconds": 0}
    )
    command = [
        RH_EXTEND,
        "extend",
        str(clip),
        "--model",
        MODEL,
        "--prompt",
        prompt,
        "--duration",
        "2",
        "--json",
    ]
    env = {**os.environ, "PREFECT_API_URL": prefect_api}

    # fails at once, with its output, if the first run ends before it is killed
    first = start_process("the first run", command, env, tmp_path / "first-run.log")
    try:
        billed = first.wait_for("a billed submit", sandbox.ledger, WAIT_S, 0.1)
        request_key, task_id = first.wait_for(
            "a taskId in submission.json", lambda: _recorded_task_id(stack, s3_prefix), WAIT_S, 0.1
        )
        first.wait_for("a status query", lambda: _hits(sandbox, polls["id"]), WAIT_S, 0.1)
    finally:
        if not first.exited():
            os.killpg(first.proc.pid, signal.SIGKILL)  # the session this test started, by its id
        first.proc.wait(timeout=30)

    assert first.proc.returncode == -signal.SIGKILL, "the first run ended before it was killed"
    assert [entry["taskId"] for entry in billed] == [task_id]
    assert billed[0]["body"]["prompt"] == prompt
    task = sandbox.task(task_id)
    assert task is not None and not task["terminal"], "the kill came after the task finished"
    archived = stack.s3().list_objects_v2(
        Bucket=stack.bucket, Prefix=f"{s3_prefix}/{request_key}/manifest.json"
    )
    assert archived.get("KeyCount", 0) == 0, "the first run archived before it was killed"

    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert second.returncode == 0, second.stderr[-3000:]
    line = json.loads(second.stdout.strip().splitlines()[-1])
    assert line["status"] == "succeeded" and line["error"] is None
    assert line["task_id"] == task_id
    assert line["request_key"] == request_key
    assert line["output_uri"] == f"s3://{stack.bucket}/{s3_prefix}/{request_key}/output.mp4"
    assert [entry["taskId"] for entry in sandbox.ledger()] == [task_id]
    assert sandbox.submits_received == 1
    assert _submission_records(stack, s3_prefix)[request_key]["task_id"] == task_id
