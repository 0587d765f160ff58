"""Cancel means cancel: cancelling a served extend-video run while RunningHub generates stops the
RunningHub task, records it, reports it, and a rerun doesn't pay again by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rh_extend.local_servers import LocalServers, wait_for
from rh_extend.storage import Archive

LONG_TASK_S = 180.0


@pytest.fixture
def long_tasks(sandbox: Any) -> Iterator[Any]:
    """The sandbox's tasks run for three minutes in this test (as a long Wan generation)."""
    before = sandbox.update_config()["run_seconds"]
    sandbox.update_config(run_seconds=LONG_TASK_S)
    try:
        yield sandbox
    finally:
        sandbox.update_config(run_seconds=before)


def _start(served: Any, source: str, prompt: str) -> dict[str, Any]:
    deployment = served.deployments["extend-video"]
    request = {"source": source, "model": "skyreels-v3-shot-switching", "prompt": prompt}
    body = {"parameters": {"request": {**request, "duration": 2}}}
    return dict(served.api.post(f"/deployments/{deployment['id']}/create_flow_run", body))


def _running_task(sandbox: Any) -> str:
    def running() -> str | None:
        for entry in sandbox.ledger():
            task = sandbox.task(entry["taskId"])
            if task and task["status"] == "RUNNING":
                return str(entry["taskId"])
        return None

    return str(wait_for("the RunningHub task to run", running, 90, 0.2))


def test_cancelling_a_served_run_cancels_its_runninghub_task(
    served: Any, stack: LocalServers, long_tasks: Any, clip: Path
) -> None:
    api, sandbox = served.api, long_tasks
    key = f"{served.prefix}/cancel/clip.mp4"
    stack.s3().upload_file(str(clip), stack.bucket, key)
    run = _start(served, f"s3://{stack.bucket}/{key}", "cancel me")
    task_id = _running_task(sandbox)

    asked = time.monotonic()
    api.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    wait_for("the task to be CANCEL", lambda: sandbox.task(task_id)["status"] == "CANCEL", 60, 0.2)
    seconds = time.monotonic() - asked

    assert api.wait_final(run["id"])["state"]["type"] == "CANCELLED"
    assert len(sandbox.ledger()) == 1
    labels = api.flow_run(run["id"])["labels"]
    request_key = next(k for k, v in labels.items() if v == task_id).removeprefix("rh-extend.task.")
    record = Archive(stack.bucket, served.prefix, client=stack.s3()).read_json(
        request_key, "submission.json"
    )
    assert record is not None
    assert (record["state"], record["task_id"], record["cancel_outcome"]) == (
        "cancelled",
        task_id,
        "cancelled",
    )
    assert record["flow_run_id"] == record["cancelled_by_flow_run"] == run["id"]
    def cancel_events() -> list[dict[str, Any]]:
        found = api.events("rh-extend.task.cancelled")
        return [e for e in found if e["payload"]["task_id"] == task_id]

    events = wait_for("the rh-extend.task.cancelled event", cancel_events, 30, 0.5)
    assert len(events) == 1 and events[0]["payload"]["flow_run_id"] == run["id"]
    reports = [a for a in api.artifacts(run["id"]) if a["type"] == "markdown"]
    assert [a["description"] for a in reports] == ["Cancelled: 1 RunningHub task(s) stopped"]
    assert task_id in reports[0]["data"]

    rerun = api.wait_final(_start(served, f"s3://{stack.bucket}/{key}", "cancel me")["id"])
    assert rerun["state"]["type"] == "FAILED"
    assert "was cancelled at" in rerun["state"]["message"]
    assert "--resubmit" in rerun["state"]["message"]
    assert sandbox.submits_received == 1  # the rerun paid nothing
    print(
        f"\n(c) cancelled flow run {run['id']}: task {task_id} CANCEL {seconds:.1f} s after the "
        f"cancel; record {record}; rerun {rerun['id']}: {rerun['state']['message'][:160]}"
    )
