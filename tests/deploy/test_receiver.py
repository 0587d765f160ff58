"""(c) `rh-extend receiver` turns a RunningHub webhook and a "new video" POST into Prefect events,
and rejects bad secrets and bad bodies without emitting anything."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from rh_extend.deployments.definitions import VIDEO_ARRIVED
from rh_extend.local_servers import LocalServers
from rh_extend.receiver import TASK_END


def _post(url: str, body: Any, secret: str | None = None, raw: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    if raw is not None:
        return httpx.post(url, content=raw, headers=headers, timeout=30)
    return httpx.post(url, json=body, headers=headers, timeout=30)


def test_new_video_post_becomes_an_arrival_event_and_a_run(
    served: Any, receiver: Any, stack: LocalServers, sandbox: Any, clip: Path
) -> None:
    api = served.api
    key = "arrivals/receiver-c.mp4"
    stack.s3().upload_file(str(clip), stack.bucket, key)
    body = {
        "source": f"s3://{stack.bucket}/{key}",
        "model": "skyreels-v3-shot-switching",
        "prompt": "via receiver",
        "params": {"duration": 2},
    }
    videos = f"{receiver.url}/videos"

    # rejected: no secret, a wrong secret, not JSON, an unknown model, a bad parameter
    assert _post(videos, body).status_code == 401
    assert _post(videos, body, "wrong-secret-wrong-secret").status_code == 401
    assert _post(videos, None, receiver.secret, raw=b"{not json").status_code == 400
    assert _post(videos, {**body, "model": "nope"}, receiver.secret).status_code == 422
    bad_duration = {**body, "params": {"duration": 99}}
    assert _post(videos, bad_duration, receiver.secret).status_code == 422
    assert _post(videos, {**body, "source": "/etc/passwd"}, receiver.secret).status_code == 422

    started = time.monotonic()
    accepted = _post(videos, body, receiver.secret)
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    again = _post(videos, body, receiver.secret)  # the same notice twice: one event
    assert again.status_code == 200 and again.json()["status"] == "duplicate"

    def arrival() -> list[dict[str, Any]]:
        return [e for e in api.events(VIDEO_ARRIVED) if e["payload"]["prompt"] == "via receiver"]

    events = api.wait_for("the arrival event", arrival, 30)
    assert [e["id"] for e in events] == [event_id]
    assert events[0]["payload"]["source"] == body["source"]
    assert events[0]["payload"]["params"]["duration"] == 2

    deployment = served.deployments["extend-video"]
    runs = api.wait_for(
        "the run it triggers", lambda: api.runs_where(deployment["id"], prompt="via receiver"), 60
    )
    run = api.wait_final(runs[0]["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert len(api.runs_where(deployment["id"], prompt="via receiver")) == 1
    billed = sandbox.ledger()
    assert len(billed) == 1
    print(
        f"\n(c) POST /videos → event {event_id} → run {run['id']} COMPLETED "
        f"{time.monotonic() - started:.1f} s after the POST; bad secret → 401"
    )

    # RunningHub's TASK_END webhook for that task: parsed twice, confirmed, one event
    task_id = billed[0]["taskId"]
    hook = f"{receiver.url}/runninghub/webhook"
    webhook = {
        "event": "TASK_END",
        "taskId": task_id,
        "eventData": json.dumps({"taskId": task_id, "status": "SUCCESS", "code": 0}),
    }
    assert _post(hook, None, raw=b"<html>").status_code == 400
    assert _post(hook, {**webhook, "event": "TASK_START"}).status_code == 422
    assert _post(hook, {**webhook, "eventData": "{broken"}).status_code == 422
    unknown = {**webhook, "taskId": "1999999999999999999", "eventData": "{}"}
    assert _post(hook, unknown).status_code == 404
    first = _post(hook, webhook)
    assert first.status_code == 202, first.text
    assert first.json()["task_status"] == "SUCCESS"
    assert _post(hook, webhook).json()["status"] == "duplicate"

    def task_end() -> list[dict[str, Any]]:
        return [
            e
            for e in api.events(TASK_END)
            if e["resource"]["prefect.resource.id"] == f"runninghub.task.{task_id}"
        ]

    ended = api.wait_for("the task-end event", task_end, 30)
    assert len(ended) == 1
    assert ended[0]["payload"]["status"] == "SUCCESS" and ended[0]["payload"]["succeeded"]
    assert ended[0]["payload"]["event_data"]["taskId"] == task_id
    assert not any(
        e["resource"]["prefect.resource.id"] == "runninghub.task.1999999999999999999"
        for e in api.events(TASK_END)
    )
    print(f"(c) TASK_END webhook for task {task_id} → one event {ended[0]['id']}")
