"""(b) An `rh-extend.video.arrived` event starts extend-video through the deployment's trigger,
with the payload's parameters; the same request arriving twice is paid once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from rh_extend.deployments.definitions import VIDEO_ARRIVED, event_param_names
from rh_extend.local_servers import LocalServers


def _payload(source: str, prompt: str, **params: Any) -> dict[str, Any]:
    return {
        "source": source,
        "model": "skyreels-v3-shot-switching",
        "prompt": prompt,
        "params": params,
    }


def _upload(stack: LocalServers, clip: Path, key: str) -> str:
    stack.s3().upload_file(str(clip), stack.bucket, key)
    return f"s3://{stack.bucket}/{key}"


def test_arrival_event_creates_exactly_one_run_with_its_parameters(
    served: Any, stack: LocalServers, sandbox: Any, clip: Path
) -> None:
    api = served.api
    deployment = served.deployments["extend-video"]
    source = _upload(stack, clip, "arrivals/event-b.mp4")
    payload = _payload(source, "event b", duration=3, cut_type="Cut-In")
    started = time.monotonic()
    event_id = api.post_event(VIDEO_ARRIVED, "rh-extend.video.event-b", payload)
    api.post_event(VIDEO_ARRIVED, "rh-extend.video.event-b", payload, event_id)  # a redelivery

    runs = api.wait_for(
        "the triggered run", lambda: api.runs_where(deployment["id"], prompt="event b"), 60
    )
    run = api.wait_final(runs[0]["id"])
    took = time.monotonic() - started

    assert run["state"]["type"] == "COMPLETED", run["state"]
    expected = {
        "source": source,
        "model": "skyreels-v3-shot-switching",
        "prompt": "event b",
        **{name: None for name in event_param_names()},
        "duration": 3,
        "cut_type": "Cut-In",
    }
    assert run["parameters"] == {"request": expected}
    assert run["idempotency_key"], "the automation creates runs with an idempotency key"
    assert len(api.runs_where(deployment["id"], prompt="event b")) == 1
    billed = sandbox.ledger()
    assert len(billed) == 1
    print(
        f"\n(b) event {event_id} (posted twice) → exactly one run {run['id']} "
        f"(COMPLETED in {took:.1f} s from the event), parameters {run['parameters']}"
    )


def test_same_request_arriving_twice_and_racing_an_inbox_tick_is_paid_once(
    served: Any, stack: LocalServers, sandbox: Any, clip: Path
) -> None:
    """Two distinct arrival events and an inbox tick, all for the same video and parameters.

    The tick is a run of the extend-inbox deployment created at the same moment as the events
    (what its schedule does every 15 minutes; test_schedule.py covers the schedule itself)."""
    api = served.api
    deployment = served.deployments["extend-video"]
    inbox_key = f"{served.prefix}/inbox/race.mp4"
    started = time.monotonic()
    stack.s3().put_object(
        Bucket=stack.bucket,
        Key=f"{served.prefix}/inbox/race.json",
        Body=json.dumps(_payload("ignored", "race", duration=2)).encode(),
    )
    source = _upload(stack, clip, inbox_key)
    payload = _payload(source, "race", duration=2)
    inbox_id = served.deployments["extend-inbox"]["id"]
    tick = api.post(f"/deployments/{inbox_id}/create_flow_run", {"idempotency_key": source})
    first = api.post_event(VIDEO_ARRIVED, "rh-extend.video.race", payload, str(uuid.uuid4()))
    second = api.post_event(VIDEO_ARRIVED, "rh-extend.video.race", payload, str(uuid.uuid4()))

    def both_triggered_runs_final() -> list[dict[str, Any]] | None:
        runs = api.runs_where(deployment["id"], prompt="race", source=source)
        done = [r for r in runs if r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")]
        return runs if len(runs) == 2 and len(done) == 2 else None

    runs = api.wait_for("both triggered runs to finish", both_triggered_runs_final, 90, 0.5)

    def inbox_marked() -> dict[str, Any] | None:
        s3 = stack.s3()
        try:
            body = s3.get_object(Bucket=stack.bucket, Key=inbox_key + ".claim.json")["Body"]
        except s3.exceptions.NoSuchKey:
            return None
        claim = json.loads(body.read())
        return claim if claim["state"] != "claimed" else None

    claim = api.wait_for("the inbox tick to finish the same video", inbox_marked, 90, 0.5)
    assert api.wait_final(tick["id"])["state"]["type"] == "COMPLETED"
    # the tick found the request archived, resumed it, or saw the other run holding it: no pay
    assert claim["state"] in ("done", "in_progress_elsewhere"), claim
    assert claim["outcome"]["status"] in ("archived", "reused", "in_progress"), claim
    billed = sandbox.ledger()
    assert len(billed) == 1, billed
    states = sorted(r["state"]["type"] for r in runs)
    assert "COMPLETED" in states
    for failed in (r for r in runs if r["state"]["type"] != "COMPLETED"):
        # the only acceptable loss: the other run held the submit at that moment (nothing paid)
        assert "SubmissionInProgressError" in (failed["state"]["message"] or ""), failed["state"]
    print(
        f"\n(b2) events {first} and {second} + inbox tick {tick['id']} for one video: runs "
        f"{[(r['id'], r['state']['type']) for r in runs]}, inbox item "
        f"{claim['outcome']['status']}, ledger {len(billed)} "
        f"({time.monotonic() - started:.1f} s)"
    )
