"""Cancel means cancel: cancelling a served extend-video run while RunningHub generates stops the
RunningHub task, records it, reports it, and a rerun doesn't pay again by itself."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rh_extend.local_servers import LocalServers, start_process, wait_for
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


@pytest.mark.parametrize("dispatch", ["task", "subflow"])
def test_cancelling_a_batch_cancels_its_items_in_flight(
    served: Any, long_tasks: Any, clip: Path, tmp_path: Path, dispatch: str
) -> None:
    api, sandbox = served.api, long_tasks
    lines = [{"source": str(clip), "prompt": f"batch {dispatch} {n}"} for n in range(2)]
    manifest = tmp_path / "cancel.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    parameters = {
        "manifest": str(manifest),
        "model": "skyreels-v3-shot-switching",
        "params": {"duration": 2},
        "dispatch": dispatch,
        "max_parallel": 2,
    }
    deployment = served.deployments["extend-batch"]
    run = api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})

    def both_running() -> list[str] | None:
        ids = [str(e["taskId"]) for e in sandbox.ledger()]
        running = [t for t in ids if (sandbox.task(t) or {}).get("status") == "RUNNING"]
        return running if len(running) == 2 else None

    started = time.monotonic()
    # up to a minute more when an earlier test's cancelled run still holds key slots (their
    # leases lapse after 60 s: the process that held them was killed)
    task_ids = wait_for("both items' tasks to run", both_running, 150, 0.2)
    running_at = time.monotonic()
    api.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True})

    def all_cancelled() -> bool:
        return all(sandbox.task(t)["status"] == "CANCEL" for t in task_ids)

    wait_for("every item's task to be CANCEL", all_cancelled, 120, 0.2)
    cancelled_at = time.monotonic()
    assert api.wait_final(run["id"])["state"]["type"] == "CANCELLED"
    assert sandbox.submits_received == 2
    print(
        f"\n(c2) batch {dispatch}: running after {running_at - started:.1f} s, both tasks CANCEL "
        f"{cancelled_at - running_at:.1f} s after the cancel, run final "
        f"{time.monotonic() - cancelled_at:.1f} s later"
    )


ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "cancel-test-pool"


@pytest.fixture(scope="module")
def pool_deployment(served: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """extend-video on a process work pool, as `prefect deploy` records it for this checkout,
    and one `prefect worker start` polling that pool; yields the deployment's id."""
    api = served.api
    api.post("/work_pools/", {"name": POOL, "type": "process"})
    flow_id = api.post("/flows/", {"name": "extend-video"})["id"]
    deployment = api.post(
        "/deployments/",
        {
            "name": "extend-video-on-a-pool",
            "flow_id": flow_id,
            "entrypoint": "flows/extend_video.py:extend_video",
            "work_pool_name": POOL,
            "pull_steps": [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
        },
    )
    args = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "2"]
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with start_process("worker", args, served.env, log) as worker:
        worker.wait_for("the worker to poll", lambda: "started" in worker.tail(200).lower(), 60)
        yield str(deployment["id"])


def test_cancelling_a_run_on_a_pool_worker_cancels_its_runninghub_task(
    served: Any, stack: LocalServers, long_tasks: Any, clip: Path, pool_deployment: str
) -> None:
    api, sandbox = served.api, long_tasks
    key = f"{served.prefix}/cancel/pool-clip.mp4"
    stack.s3().upload_file(str(clip), stack.bucket, key)
    request = {
        "source": f"s3://{stack.bucket}/{key}",
        "model": "skyreels-v3-shot-switching",
        "prompt": "cancel me on a worker",
        "duration": 2,
    }
    run = api.post(
        f"/deployments/{pool_deployment}/create_flow_run", {"parameters": {"request": request}}
    )
    task_id = _running_task(sandbox)

    asked = time.monotonic()
    api.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    wait_for("the task to be CANCEL", lambda: sandbox.task(task_id)["status"] == "CANCEL", 60, 0.2)
    seconds = time.monotonic() - asked

    assert api.wait_final(run["id"])["state"]["type"] == "CANCELLED"
    cancelled = wait_for(
        "the rh-extend.task.cancelled event",
        lambda: [
            e for e in api.events("rh-extend.task.cancelled") if e["payload"]["task_id"] == task_id
        ],
        30,
        0.5,
    )
    assert cancelled[0]["payload"]["outcome"] == "cancelled"
    assert sandbox.submits_received == 1
    print(f"\n(c3) pool worker run {run['id']}: task {task_id} CANCEL {seconds:.1f} s after")
