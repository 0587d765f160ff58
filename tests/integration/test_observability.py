"""Every run explains itself in Prefect: artifacts, events, tags, log lines and `rh-extend runs`,
all asserted through the Prefect API (the test harness), with real S3 objects behind the links.

Three runs, made once for the module: a Wan 2.7 run that succeeds, the same request again (reused
from the archive), and a shot-switching run whose RunningHub task fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    TaskRunFilter,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from rich.console import Console
from typer.testing import CliRunner

from rh_extend.cli import app
from rh_extend.flows.batch.outcomes import ItemOutcome, summarize
from rh_extend.flows.batch.report import BATCH_FINISHED, report
from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LOCAL_API_KEY, LocalServers
from rh_extend.observe import artifact_key, artifacts
from rh_extend.observe.runs import RunRow, render
from rh_extend.request import ExtendRequest
from rh_extend.result import ExtendResult
from rh_extend.storage import Archive, parse_s3_uri
from runninghub import TaskFailedError

pytestmark = pytest.mark.usefixtures("prefect_api")

PROMPT = "the camera keeps drifting right"
FAIL_PROMPT = "observe this fail"
FAIL_MODEL = "skyreels-v3-shot-switching"
DEADLINE_S = 30.0


@dataclass(frozen=True)
class Runs:
    ok: ExtendResult
    again: ExtendResult
    failed_run_id: UUID
    failed_error: BaseException
    prefix: str


@pytest.fixture(scope="module")
def runs(stack: LocalServers, clip: Path) -> Iterator[Runs]:
    prefix = f"t-observe-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RH_EXTEND_S3_PREFIX", prefix)
        stack.sandbox.reset()
        stack.sandbox.add_fault(
            "fail_task",
            route="task",
            match={"prompt_contains": FAIL_PROMPT},
            params={"code": "1015", "message": f"generation failed for key {LOCAL_API_KEY}"},
        )
        params: dict[str, Any] = {"prompt": PROMPT, "duration": 5, "resolution": "720P"}
        # the sandbox's task takes 0.7 s: a progress artifact from the first poll on, so that
        # its whole life is seen (by default a task this short gets none)
        with pytest.MonkeyPatch.context() as short:
            short.setattr(artifacts, "PROGRESS_AFTER_S", 0.0)
            ok = extend_video(ExtendRequest(source=str(clip), model="wan-2.7", **params))
        again = extend_video(ExtendRequest(source=str(clip), model="wan-2.7", **params))
        state = extend_video(
            ExtendRequest(source=str(clip), model=FAIL_MODEL, prompt=FAIL_PROMPT, duration=2),
            return_state=True,
        )
        with pytest.raises(TaskFailedError) as raised:
            state.result()
        stack.sandbox.clear_faults()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    yield Runs(ok=ok, again=again, failed_run_id=run_id, failed_error=raised.value, prefix=prefix)


def _artifacts(run_id: object) -> dict[str, Any]:
    """This run's keyed artifacts by key (the newest version of each); Prefect's own result
    records of a failed run have no key and are left out."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(run_id))]))
        )
    by_key: dict[str, Any] = {}
    for artifact in sorted(found, key=lambda a: a.created):
        if artifact.key:
            by_key[artifact.key] = artifact
    return by_key


def _events(run_id: object, wanted: set[str]) -> dict[str, Any]:
    """This run's rh-extend.* events by name, once all of WANTED arrived (they come in batches)."""
    event_filter = EventFilter(
        event=EventNameFilter(prefix=["rh-extend."]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
    )
    deadline = time.monotonic() + DEADLINE_S
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(filter=event_filter, limit=50)
            found = {event.event: event for event in page.events}
            if wanted <= set(found) or time.monotonic() > deadline:
                assert wanted <= set(found), f"events of run {run_id}: {sorted(found)}"
                return found
            time.sleep(0.2)


def _logs(run_id: object, until: str) -> list[Any]:
    """This run's log records, once a line containing UNTIL arrived."""
    deadline = time.monotonic() + DEADLINE_S
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id={"any_": [UUID(str(run_id))]}), limit=200
            )
            if any(until in log.message for log in logs) or time.monotonic() > deadline:
                assert any(until in log.message for log in logs), [log.message for log in logs]
                return list(logs)
            time.sleep(0.2)


def _manifest(stack: LocalServers, runs: Runs) -> dict[str, Any]:
    manifest = Archive(stack.bucket, runs.prefix, client=stack.s3()).read_json(
        str(runs.ok.request_key), "manifest.json"
    )
    assert manifest is not None
    return manifest


def _links(markdown: str) -> dict[str, str]:
    """Markdown link/image targets by what they point to (the object's file name)."""
    found = {}
    for url in re.findall(r"\]\((http://127\.0\.0\.1:\d+/[^)\s]+)\)", markdown):
        found[url.split("?", 1)[0].rsplit("/", 1)[-1]] = url
    return found


def test_run_markdown_artifact_tells_the_whole_run(runs: Runs, stack: LocalServers) -> None:
    key = str(runs.ok.request_key)
    arts = _artifacts(runs.ok.flow_run_id)
    assert set(arts) == {
        artifact_key(key),
        artifact_key(key, "output"),
        artifact_key(key, "progress"),
    }
    assert artifact_key(key) == f"extend-{key[:16]}"
    markdown = arts[artifact_key(key)].data
    manifest = _manifest(stack, runs)
    price = manifest["price_preview"]

    assert "# Extended and archived: clip.mp4 · `wan-2.7`" in markdown
    assert f"| **prompt** | {PROMPT} |" in markdown
    assert "`duration=5` · `resolution=720P`" in markdown
    assert "3.00 s input → **5.00 s** output (expected 5.00 s; +2.00 s)" in markdown
    assert f"preview {price['estimated']:.4g} {price['currency']}" in markdown
    assert f"actual **{runs.ok.cost:.4g}**" in markdown
    assert f"| **RunningHub taskId** | `{runs.ok.task_id}` |" in markdown
    assert f"`{key}`" in markdown
    header = "| stage | upload | submit | queue | generation | download | archive | total |"
    assert header in markdown
    timing_row = markdown.split(header, 1)[1].splitlines()[2]
    assert len(re.findall(r"\d+\.\d\d s", timing_row)) == 8, timing_row  # all known, none "—"
    for name in ("output.mp4", "input.mp4", "manifest.json", "contact-sheet.png"):
        assert f"`s3://{stack.bucket}/{runs.prefix}/{key}/{name}`" in markdown
    links = _links(markdown)
    assert set(links) == {"output.mp4", "input.mp4", "manifest.json", "contact-sheet.png"}
    assert "## The junction at 3.00 s" in markdown
    alt = (
        "contact sheet: source frames at 2.00, 2.50, 2.96 s, extension frames at 3.00, 3.50, 4.00 s"
    )
    assert f"![{alt}]({links['contact-sheet.png']})" in markdown
    # the presigned links really serve the archived objects
    output = httpx.get(links["output.mp4"], timeout=10).content
    assert hashlib.sha256(output).hexdigest() == runs.ok.output_sha256
    assert json.loads(httpx.get(links["manifest.json"], timeout=10).content)["task_id"] == (
        runs.ok.task_id
    )
    assert LOCAL_API_KEY not in markdown and LOCAL_API_KEY[:12] not in markdown


def test_contact_sheet_is_a_png_next_to_the_video(runs: Runs, stack: LocalServers) -> None:
    import av

    manifest = _manifest(stack, runs)
    sheet = manifest["contact_sheet"]
    assert sheet["junction_s"] == 3.0
    assert [(f["side"], f["time_s"]) for f in sheet["frames"]] == [
        ("source", 2.0),
        ("source", 2.5),
        ("source", 2.958),
        ("extension", 3.0),
        ("extension", 3.5),
        ("extension", 4.0),
    ]
    bucket, key = parse_s3_uri(sheet["uri"])
    assert key.rsplit("/", 1)[0] == parse_s3_uri(str(runs.ok.output_uri))[1].rsplit("/", 1)[0]
    head = stack.s3().head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"]["sha256"] == sheet["sha256"]
    markdown = _artifacts(runs.ok.flow_run_id)[artifact_key(str(runs.ok.request_key))].data
    png = httpx.get(_links(markdown)["contact-sheet.png"], timeout=10).content
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert hashlib.sha256(png).hexdigest() == sheet["sha256"]
    path = Path(manifest["request_key"] + ".png")
    try:
        path.write_bytes(png)
        with av.open(str(path)) as container:
            image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    finally:
        path.unlink(missing_ok=True)
    assert image.shape == (sheet["height"], sheet["width"], 3)
    # six 240×180 thumbnails of the 320×240 clip: the first and last cells hold real pictures
    first, last = image[30:210, 8:248], image[30:210, -248:-8]
    assert first.std() > 20 and last.std() > 20


def test_link_and_progress_artifacts(runs: Runs) -> None:
    key = str(runs.ok.request_key)
    arts = _artifacts(runs.ok.flow_run_id)
    link = arts[artifact_key(key, "output")]
    target = re.fullmatch(r"\[output\.mp4 \(wan-2\.7, task (\d+)\)\]\((\S+)\)", link.data)
    assert target is not None, link.data
    assert target.group(1) == runs.ok.task_id
    output = httpx.get(target.group(2), timeout=10).content
    assert hashlib.sha256(output).hexdigest() == runs.ok.output_sha256

    progress = arts[artifact_key(key, "progress")]
    assert progress.type == "progress"
    assert float(progress.data) == 100.0
    assert progress.description.startswith("SUCCESS after ")
    assert f"task {runs.ok.task_id}" in progress.description
    assert "a typical 180 s" in progress.description  # Wan 2.7's typical generation time


def test_events_name_the_request_task_and_model(runs: Runs, stack: LocalServers) -> None:
    from rh_extend.observe import events

    found = _events(runs.ok.flow_run_id, {events.SUBMITTED, events.SUCCEEDED, events.ARCHIVED})
    manifest = _manifest(stack, runs)
    for name in (events.SUBMITTED, events.SUCCEEDED, events.ARCHIVED):
        event = found[name]
        assert event.resource.id == f"rh-extend.request.{runs.ok.request_key}"
        assert event.resource["rh-extend.request-key"] == runs.ok.request_key
        assert event.resource["rh-extend.task-id"] == runs.ok.task_id
        assert event.resource["rh-extend.model"] == "wan-2.7"
        related = {(r.id, r.role) for r in event.related}
        assert ("rh-extend.model.wan-2.7", "model") in related
        assert (f"rh-extend.task.{runs.ok.task_id}", "runninghub-task") in related
        assert (f"prefect.flow-run.{runs.ok.flow_run_id}", "flow-run") in related
    submitted = found[events.SUBMITTED].payload
    assert submitted["price_preview"] == manifest["price_preview"]
    assert set(submitted["timings_s"]) == {"stage", "upload", "submit"}
    succeeded = found[events.SUCCEEDED].payload
    assert succeeded["cost"] == runs.ok.cost == manifest["cost"]
    assert (succeeded["input_duration_s"], succeeded["output_duration_s"]) == (3.0, 5.0)
    assert succeeded["generation_s"] == manifest["timings_s"]["generation"]
    archived = found[events.ARCHIVED].payload
    assert archived["output_uri"] == runs.ok.output_uri
    assert archived["manifest_uri"] == runs.ok.manifest_uri
    assert archived["contact_sheet_uri"] == manifest["contact_sheet"]["uri"]
    assert archived["output_sha256"] == runs.ok.output_sha256
    assert archived["cost"] == runs.ok.cost
    assert set(archived["timings_s"]) >= {"stage", "upload", "queued", "generation", "archive"}
    assert events.FAILED not in found and events.REUSED not in found


def test_rerun_reports_the_reused_archive(runs: Runs) -> None:
    from rh_extend.observe import events

    assert runs.again.reused_archive and runs.again.output_uri == runs.ok.output_uri
    key = str(runs.ok.request_key)
    arts = _artifacts(runs.again.flow_run_id)
    assert set(arts) == {artifact_key(key), artifact_key(key, "output")}  # no polling: no progress
    markdown = arts[artifact_key(key)].data
    assert "# Reused archive" in markdown and "no RunningHub call, nothing paid" in markdown
    assert f"`{runs.ok.task_id}`" in markdown and "contact-sheet.png" in markdown
    found = _events(runs.again.flow_run_id, {events.REUSED})
    assert set(found) == {events.REUSED}
    assert found[events.REUSED].payload["cost"] == 0.0
    assert found[events.REUSED].payload["archived_cost"] == runs.ok.cost


def test_failed_task_emits_failure_and_explains_it(runs: Runs) -> None:
    from rh_extend.observe import events

    found = _events(runs.failed_run_id, {events.SUBMITTED, events.FAILED})
    failed = found[events.FAILED]
    task_id = failed.resource["rh-extend.task-id"]
    assert task_id == getattr(runs.failed_error, "task_id", None)
    assert task_id == found[events.SUBMITTED].resource["rh-extend.task-id"]
    request_key = failed.resource["rh-extend.request-key"]
    assert re.fullmatch(r"[0-9a-f]{64}", request_key)
    assert failed.resource["rh-extend.model"] == FAIL_MODEL
    assert failed.payload["error"]["type"] == "TaskFailedError"
    assert failed.payload["error"]["code"] == "1015"
    assert LOCAL_API_KEY[:12] not in json.dumps(failed.payload)
    assert events.SUCCEEDED not in found and events.ARCHIVED not in found

    arts = _artifacts(runs.failed_run_id)
    assert set(arts) == {artifact_key(request_key), artifact_key(request_key, "progress")}
    report = arts[artifact_key(request_key)].data
    assert f"# Failed: {FAIL_MODEL}" in report
    assert "| **error** | `1015` (TaskFailedError) |" in report
    assert f"`{task_id}`" in report and f"`{request_key}`" in report
    assert LOCAL_API_KEY[:12] not in report
    progress = arts[artifact_key(request_key, "progress")]
    assert progress.description.startswith("FAILED: [1015]")


def test_runs_are_tagged_by_model(runs: Runs) -> None:
    with get_client(sync_client=True) as client:
        ok = client.read_flow_run(UUID(str(runs.ok.flow_run_id)))
        failed = client.read_flow_run(runs.failed_run_id)
    assert "model:wan-2.7" in ok.tags
    assert f"model:{FAIL_MODEL}" in failed.tags
    assert ok.name == "extend-clip-wan-2.7"


def test_task_log_lines_carry_task_id_and_request_key(runs: Runs) -> None:
    key12 = str(runs.ok.request_key)[:12]
    logs = _logs(runs.ok.flow_run_id, "event rh-extend.video.archived")
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(str(runs.ok.flow_run_id))])
            ),
            task_run_filter=TaskRunFilter(),
        )
    names = {task_run.id: task_run.name.rsplit("-", 1)[0] for task_run in task_runs}
    about_task = [
        log.message
        for log in logs
        if names.get(log.task_run_id) in ("submit", "poll", "download", "archive")
        and not log.message.startswith(("Finished in state", "Running hook", "Hook "))
    ]
    assert len(about_task) >= 5, about_task  # submitted, statuses, downloaded, archived, event
    for message in about_task:
        assert f"[{key12} task {runs.ok.task_id}]" in message, message


def test_runs_command_lists_the_runs(runs: Runs) -> None:
    from rh_extend.observe import events

    _events(runs.ok.flow_run_id, {events.ARCHIVED})
    _events(runs.again.flow_run_id, {events.REUSED})
    _events(runs.failed_run_id, {events.FAILED})
    result = CliRunner().invoke(app, ["runs", "--since", "1h", "--json", "--limit", "200"])
    assert result.exit_code == 0, result.output
    rows = {row["flow_run_id"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}
    ok, again, failed = (
        rows[str(runs.ok.flow_run_id)],
        rows[str(runs.again.flow_run_id)],
        rows[str(runs.failed_run_id)],
    )
    assert (ok["state"], ok["model"], ok["cost"]) == ("Completed", "wan-2.7", runs.ok.cost)
    assert (ok["output_uri"], ok["task_id"]) == (runs.ok.output_uri, runs.ok.task_id)
    assert ok["duration_s"] is not None and ok["duration_s"] > 0
    assert again["reused"] and again["cost"] == 0.0 and again["output_uri"] == runs.ok.output_uri
    assert (failed["state"], failed["model"], failed["output_uri"]) == ("Failed", FAIL_MODEL, None)
    assert "1015" in (failed["message"] or "")

    table = CliRunner().invoke(app, ["runs", "--since", "1h", "--limit", "200"])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].strip() == "extend-video runs, last 1h"
    assert "extend-clip-wan-2.7" in table.stdout
    ours = [row for row in runs_rows(rows.values()) if row.flow_run_id == ok["flow_run_id"]]
    wide = Console(width=400, record=True, file=io.StringIO())
    wide.print(render(ours, "1h"))
    line = next(line for line in wide.export_text().splitlines() if "extend-clip-wan-2.7" in line)
    cells = [cell.strip() for cell in line.split("│")]
    assert cells[2:8] == [
        "extend-clip-wan-2.7",
        "Completed",
        "wan-2.7",
        f"{runs.ok.cost:.4g}",
        f"{ok['duration_s']:.1f} s",
        runs.ok.output_uri,
    ]
    bad = CliRunner().invoke(app, ["runs", "--since", "yesterday"])
    assert bad.exit_code == 2


def runs_rows(rows: Any) -> list[RunRow]:
    return [RunRow(**row) for row in rows]


def _artifacts_when_there(run_id: object, keys: set[str]) -> dict[str, Any]:
    """This run's keyed artifacts, once all of KEYS arrived."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = _artifacts(run_id)
        if keys <= set(found) or time.monotonic() > deadline:
            assert keys <= set(found), f"artifacts of run {run_id}: {sorted(found)}"
            return found
        time.sleep(0.2)


def test_batch_report_table_and_finished_event() -> None:
    """What the batch flow leaves at its end, for one archived item and one failed."""
    archived = ItemOutcome(
        label="a.mp4",
        source="/videos/a.mp4",
        model="wan-2.7",
        status="archived",
        request_key="ab" * 32,
        task_id="1234",
        output_uri="s3://bucket/p/output.mp4",
        cost=0.8,
        flow_run_id="run-a",
        seconds=4.31,
    )
    failed = ItemOutcome(
        label="b.mp4",
        source="/videos/b.mp4",
        model=FAIL_MODEL,
        status="failed",
        task_id="5678",
        cause="TaskFailedError: task | failed (1015)",
        seconds=1.0,
    )
    summary = summarize("batch.jsonl", [archived, failed], None)

    @flow(name="batch-report-probe")
    def probe() -> None:
        report(summary)

    state = probe(return_state=True)
    run_id = state.state_details.flow_run_id
    arts = _artifacts_when_there(run_id, {"extend-batch-report", "extend-batch-items"})
    table = arts["extend-batch-items"]
    assert table.type == "table" and table.description == summary.line()
    assert json.loads(table.data) == [
        {
            "item": "a.mp4",
            "status": "archived",
            "model": "wan-2.7",
            "output": "s3://bucket/p/output.mp4",
            "task_id": "1234",
            "request_key": "ab" * 32,
            "cause": "",
            "flow_run_id": "run-a",
            "seconds": 4.3,
        },
        {
            "item": "b.mp4",
            "status": "failed",
            "model": FAIL_MODEL,
            "output": "",
            "task_id": "5678",
            "request_key": "",
            "cause": "TaskFailedError: task | failed (1015)",
            "flow_run_id": "",
            "seconds": 1.0,
        },
    ]
    markdown = arts["extend-batch-report"]
    assert markdown.type == "markdown" and markdown.description == summary.line()
    assert markdown.data == "\n".join(
        [
            "# Batch batch.jsonl",
            "",
            summary.line(),
            "",
            "| item | status | output / cause |",
            "|---|---|---|",
            "| a.mp4 | archived | s3://bucket/p/output.mp4 |",
            "| b.mp4 | failed | TaskFailedError: task / failed (1015) |",
        ]
    )
    finished = _events(run_id, {BATCH_FINISHED})[BATCH_FINISHED]
    assert finished.resource.id == f"rh-extend.batch.{run_id}"
    assert finished.resource["prefect.resource.name"] == "batch.jsonl"
    assert (finished.payload["total"], finished.payload["archived"]) == (2, 1)
    assert finished.payload["failed"] == 1 and "items" not in finished.payload
    assert finished.payload["failed_items"] == [
        {"item": "b.mp4", "cause": "TaskFailedError: task | failed (1015)"}
    ]


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_failure_automation_from_the_docs_notifies(
    clip: Path, sandbox: Any, s3_prefix: str
) -> None:
    """The YAML in docs/observability.md, created as is (with a webhook block to a local server),
    turns a real failed run into a notification naming its task and error."""
    import yaml
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.schemas.automations import AutomationCore

    docs = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    found = re.search(r"```yaml\n(name: rh-extend notify on failure\n.*?)```", docs, re.S)
    assert found is not None
    spec = yaml.safe_load(found.group(1))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    block = CustomWebhookNotificationBlock(
        name="observability-test",
        url=f"http://127.0.0.1:{server.server_port}/hook",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    block_id = block.save(f"observability-test-{uuid.uuid4().hex[:8]}")
    spec["actions"][0]["block_document_id"] = str(block_id)
    with get_client(sync_client=True) as client:
        automation_id = client.create_automation(AutomationCore.model_validate(spec))
    try:
        sandbox.add_fault(
            "fail_task", route="task", match={"prompt_contains": "alert"}, params={"code": "1015"}
        )
        state = extend_video(
            ExtendRequest(source=str(clip), model=FAIL_MODEL, prompt="alert me", duration=2),
            return_state=True,
        )
        with pytest.raises(TaskFailedError) as raised:
            state.result()
        task_id = str(raised.value.task_id)
        deadline = time.monotonic() + DEADLINE_S
        while not [n for n in _Hook.received if task_id in n["body"]]:
            assert time.monotonic() < deadline, f"no notification for task {task_id}"
            time.sleep(0.2)
        note = next(n for n in _Hook.received if task_id in n["body"])
        assert note["subject"] == f"rh-extend: a {FAIL_MODEL} extension failed"
        assert f"Run extend-clip-{FAIL_MODEL} failed with 1015:" in note["body"]
        assert f"RunningHub task {task_id}" in note["body"]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)
            client.delete_block_document(block_id)
        server.shutdown()


def test_failure_before_the_request_key_is_known(sandbox: Any, s3_prefix: str) -> None:
    from rh_extend.errors import SourceError
    from rh_extend.observe import events

    state = extend_video(
        ExtendRequest(source="/nonexistent/video.mp4", model="wan-2.7"), return_state=True
    )
    with pytest.raises(SourceError):
        state.result()
    run_id = state.state_details.flow_run_id
    failed = _events(run_id, {events.FAILED})[events.FAILED]
    assert failed.resource.id == f"rh-extend.request.unknown-{run_id}"
    assert failed.resource["rh-extend.model"] == "wan-2.7"
    assert "rh-extend.task-id" not in failed.resource
    assert failed.payload["error"]["code"] == "SOURCE"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    reports = [a for a in found if a.type == "markdown"]
    assert len(reports) == 1 and reports[0].key is None  # no request key: no artifact key either
    assert "# Failed: wan-2.7" in reports[0].data
    assert "| **request key** | — (failed before it was known) |" in reports[0].data
    assert sandbox.ledger() == []
