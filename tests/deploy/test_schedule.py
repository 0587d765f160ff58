"""(a) The extend-inbox schedule, served from one process, creates runs that take the inbox's new
videos, archive them, and mark them so later ticks leave them alone."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rh_extend.local_servers import LocalServers


def test_interval_schedule_creates_and_completes_runs(
    served: Any, inbox_schedule: dict[str, Any], stack: LocalServers, sandbox: Any, clip: Path
) -> None:
    api = served.api
    inbox = f"{served.prefix}/inbox/"
    s3 = stack.s3()
    sidecar = {
        "model": "skyreels-v3-shot-switching",
        "prompt": "scheduled",
        "params": {"duration": 2},
    }
    s3.put_object(Bucket=stack.bucket, Key=inbox + "sched-clip.json", Body=json.dumps(sidecar))
    s3.upload_file(str(clip), stack.bucket, inbox + "sched-clip.mp4")
    started = time.monotonic()

    def marked() -> dict[str, Any] | None:
        try:
            body = s3.get_object(Bucket=stack.bucket, Key=inbox + "sched-clip.mp4.claim.json")
        except s3.exceptions.NoSuchKey:
            return None
        claim = json.loads(body["Body"].read())
        return claim if claim.get("state") != "claimed" else None

    claim = api.wait_for("the inbox video to be processed", marked, timeout_s=120)
    took = time.monotonic() - started
    assert claim["state"] == "done", claim
    outcome = claim["outcome"]
    assert outcome["status"] == "archived", outcome
    assert outcome["output_uri"].startswith(f"s3://{stack.bucket}/{served.prefix}/")

    # the item ran as a subflow of a run that the schedule created, and that run completed
    item_run = api.wait_final(str(outcome["flow_run_id"]))
    assert item_run["state"]["type"] == "COMPLETED"
    tick_id = api.task_run(item_run["parent_task_run_id"])["flow_run_id"]
    tick = api.wait_final(tick_id)
    assert tick["deployment_id"] == inbox_schedule["id"]
    assert tick["auto_scheduled"] is True
    assert tick["state"]["type"] == "COMPLETED"
    assert tick["parameters"]["inbox"] == "default"

    # a later tick completes too and leaves the marked video alone: still one paid submit
    def later_tick() -> list[dict[str, Any]]:
        return [
            run
            for run in api.flow_runs(inbox_schedule["id"])
            if run["state"]["type"] == "COMPLETED"
            and run["expected_start_time"] > tick["expected_start_time"]
        ]

    later = api.wait_for("a later tick to complete", later_tick, 10 * served.inbox_interval_s)
    assert len(sandbox.ledger()) == 1
    print(
        f"\n(a) scheduled run {tick_id} (COMPLETED, {tick['total_run_time']:.1f} s run time) "
        f"archived the inbox video {took:.1f} s after upload; item run {item_run['id']}; "
        f"later tick {later[0]['id']} completed without a new submit (ledger 1)"
    )
