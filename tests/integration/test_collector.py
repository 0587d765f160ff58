"""The collector's branches on real parts: tasks submitted to the sandbox over HTTP, submission
records in the S3 server, owners in the Prefect API. It archives what succeeded, records what
failed, leaves what runs (or cancels it past a limit) and what a live run still holds, and never
submits."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, get_client
from prefect.states import Running

from rh_extend.clients import archive, runninghub_client
from rh_extend.flows.collect_orphans import collect_orphans
from rh_extend.local_servers import LocalServers, wait_for
from rh_extend.media import probe
from rh_extend.settings import load_settings
from rh_extend.submissions import SubmissionBook
from runninghub import get_model

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "skyreels-v3-shot-switching"


def _origin(source: str, clip: Path, prompt: str) -> dict[str, Any]:
    info = probe(clip)
    params = get_model(MODEL).normalize({"prompt": prompt, "duration": 2})
    return {
        "request": {"model": MODEL, "endpoint": "-", "params": params, "source": source},
        "input": {
            "sha256": hashlib.sha256(clip.read_bytes()).hexdigest(),
            "size_bytes": info.size_bytes,
            "duration_s": info.duration_s,
            "container": info.container,
            "width": info.width,
            "height": info.height,
        },
        "expected_duration_s": info.duration_s + 2,
    }


def _submitted(book: SubmissionBook, source: str, clip: Path, prompt: str, owner: str) -> str:
    """A task really submitted (and billed), and the record a run would have left: its key."""
    settings = load_settings()
    origin = _origin(source, clip, prompt)
    with runninghub_client(settings) as client:
        upload = client.upload(clip)
        body = get_model(MODEL).build_body(upload.download_url, origin["request"]["params"])
        response = client.submit(MODEL, body)
    key = uuid.uuid4().hex * 2
    book.record_task(key, MODEL, str(response.task_id), "QUEUED", owner, origin)
    return key


@flow(name="collector-test-owner")
def _owner() -> None:
    """Never called: its runs stand for a live run that holds a task."""


def _live_flow_run() -> str:
    with get_client(sync_client=True) as client:
        return str(client.create_flow_run(_owner, state=Running()).id)


def test_the_collector_archives_records_leaves_and_never_submits(
    clip: Path, stack: LocalServers, sandbox: Any, s3_prefix: str
) -> None:
    store = archive(load_settings())
    book = SubmissionBook(store)
    stack.s3().upload_file(str(clip), stack.bucket, f"{s3_prefix}-src/clip.mp4")
    source = f"s3://{stack.bucket}/{s3_prefix}-src/clip.mp4"
    dead = str(uuid.uuid4())  # a flow run the Prefect API doesn't know: gone
    sandbox.add_fault("fail_task", route="task", match={"prompt_contains": "fails"})
    sandbox.add_fault(
        "slow", route="task", match={"prompt_contains": "long"}, params={"seconds": 600}
    )
    keys = {
        "succeeds": _submitted(book, source, clip, "succeeds", dead),
        "unreadable": _submitted(book, "/nowhere/clip.mp4", clip, "unreadable source", dead),
        "fails": _submitted(book, source, clip, "fails", dead),
        "runs": _submitted(book, source, clip, "runs long", dead),
        "live": _submitted(book, source, clip, "held by a live run", _live_flow_run()),
    }
    task_of = {name: str(book.read(key)["task_id"]) for name, key in keys.items()}
    billed = len(sandbox.ledger())

    def ended() -> bool:
        statuses = {n: sandbox.task(task_of[n])["status"] for n in ("succeeds", "fails")}
        return statuses == {"succeeds": "SUCCESS", "fails": "FAILED"}

    wait_for("the tasks to end", ended, 60, 0.2)
    first = collect_orphans(min_age_s=0)
    by_key = {item.request_key: item for item in first.items}

    assert by_key[keys["succeeds"]].outcome == "archived"
    manifest = store.read_json(keys["succeeds"], "manifest.json")
    assert manifest is not None and manifest["input"]["uri"].endswith("/input.mp4")
    assert manifest["task_id"] == task_of["succeeds"] and manifest["collected"]["owner_flow_run"]
    output_only = store.read_json(keys["unreadable"], "manifest.json")
    assert output_only is not None and output_only["input"]["uri"] is None
    assert by_key[keys["fails"]].outcome == "ended"
    assert book.read(keys["fails"])["state"] == "ended"
    assert book.read(keys["fails"])["end_status"] == "FAILED"
    assert by_key[keys["runs"]].outcome == "running"
    assert keys["live"] not in by_key  # its run is alive: it will archive it itself
    assert len(sandbox.ledger()) == billed  # nothing submitted

    second = collect_orphans(min_age_s=0, cancel_running_after_s=0)
    again = {item.request_key: item.outcome for item in second.items}
    assert again == {keys["runs"]: "cancelled"}  # archived and ended ones are not orphans now
    assert sandbox.task(task_of["runs"])["status"] == "CANCEL"
    assert book.read(keys["runs"])["state"] == "cancelled"
    assert len(sandbox.ledger()) == billed
