"""Prefect artifacts: every run explains itself in the UI. This module publishes; the text is
`render`'s.

Per run (keys derived from the request key, so every run of the same request adds a version):

- `extend-<first 16 hex of the request key>` — markdown: model, prompt, parameters, input →
  output duration, cost (preview and actual), time per stage, taskId, S3 URIs with presigned
  links, and the contact sheet of the junction (a PNG stored next to the video).
- `extend-<…>-output` — a link to the output (presigned).
- `extend-<…>-progress` — progress while polling: queued / running / elapsed against the model's
  typical time.

Per batch, the batch flow publishes `render`'s table and report itself (`flows/batch/report.py`).

Presigned links in artifacts last `ARTIFACT_LINK_TTL_S` (7 days, SigV4's maximum; shorter when
the S3 credentials themselves expire sooner). The S3 URIs next to them are the lasting reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from rh_extend.observe import events
from rh_extend.observe.common import best_effort, error_fields, short
from rh_extend.observe.context import current_facts
from rh_extend.observe.render import (
    ARTIFACT_LINK_TTL_S,
    render_failure_markdown,
    render_run_description,
    render_run_markdown,
)
from rh_extend.observe.writer import report_writes
from rh_extend.storage import Archive

if TYPE_CHECKING:
    from rh_extend.workdir import Removal

CONTACT_SHEET = "contact-sheet.png"
MANIFEST = "manifest.json"
SUBMISSION = "submission.json"
PROGRESS_EVERY_S = 5.0
# A task that ends sooner gets no progress artifact: it is over before a progress bar could
# help, its timings are in the run's report, and a batch of short tasks would otherwise spend
# three Prefect writes per video on bars nobody sees.
PROGRESS_AFTER_S = 5.0


def artifact_key(request_key: str, suffix: str = "") -> str:
    """`extend-<first 16 hex>[-suffix]`: lowercase letters, digits and dashes, as Prefect wants."""
    base = f"extend-{request_key[:16].lower()}"
    return f"{base}-{suffix}" if suffix else base


# --- the contact sheet ---------------------------------------------------------------------


@best_effort
def store_contact_sheet(
    store: Archive, request_key: str, video: Path, junction_s: float, manifest: dict[str, Any]
) -> None:
    """Build the junction's contact sheet, store it next to the video, note it in MANIFEST."""
    from rh_extend.media import sha256_file
    from rh_extend.observe.contact_sheet import build_contact_sheet  # numpy: not before here

    sheet = build_contact_sheet(video, junction_s, video.parent / CONTACT_SHEET)
    digest = sha256_file(sheet.path)
    stored = store.store_file(
        request_key, CONTACT_SHEET, sheet.path, sha256=digest, content_type="image/png"
    )
    manifest["contact_sheet"] = {
        "uri": stored.uri,
        "sha256": digest,
        "junction_s": round(junction_s, 3),
        "width": sheet.width,
        "height": sheet.height,
        "frames": [{"side": f.side, "time_s": f.time_s} for f in sheet.frames],
    }


# --- the run's markdown and link -----------------------------------------------------------


def _archive_seconds() -> float | None:
    """Seconds since the current task (the archive task) started."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    start = getattr(getattr(ctx, "task_run", None), "start_time", None)
    if start is None:
        return None
    return round(float((datetime.now(UTC) - start).total_seconds()), 3)


def _links(store: Archive, request_key: str, manifest: dict[str, Any]) -> dict[str, str]:
    names = {"output": manifest["output"]["uri"].rsplit("/", 1)[-1], "manifest": MANIFEST}
    if manifest.get("input", {}).get("uri"):
        names["input"] = manifest["input"]["uri"].rsplit("/", 1)[-1]
    if manifest.get("contact_sheet"):
        names["contact_sheet"] = CONTACT_SHEET
    return {
        what: store.presign(request_key, name, ARTIFACT_LINK_TTL_S) for what, name in names.items()
    }


@best_effort
def publish_run(
    store: Archive,
    manifest: dict[str, Any],
    *,
    reused: bool = False,
    removed: Removal | None = None,
) -> None:
    """The run's markdown and link artifacts, and `rh-extend.video.archived` (or `.reused`):
    rendered by `render`, sent by `report_writes` while the run ends. REMOVED: the local copies
    the run removed once archived."""
    request_key = manifest["request_key"]
    archive_s = None if reused else _archive_seconds()
    uris = {
        "output": manifest["output"]["uri"],
        "input": manifest.get("input", {}).get("uri"),
        "contact_sheet": (manifest.get("contact_sheet") or {}).get("uri"),
        "manifest": store.uri(request_key, MANIFEST),
        "submission": None if reused else store.uri(request_key, SUBMISSION),
    }
    uris = {what: uri for what, uri in uris.items() if uri}
    links = _links(store, request_key, manifest)
    model = manifest.get("request", {}).get("model", "?")
    local = {"files": removed.files, "bytes": removed.bytes} if removed is not None else None
    markdown = render_run_markdown(
        manifest, links, uris, archive_s=archive_s, reused=reused, removed=local
    )
    description = render_run_description(manifest, reused=reused)
    view = {**manifest, "manifest_uri": uris["manifest"]}
    link_text = f"{uris['output'].rsplit('/', 1)[-1]} ({model}, task {manifest.get('task_id')})"

    def send_report() -> None:
        create_markdown_artifact(markdown, key=artifact_key(request_key), description=description)
        if reused:
            events.video_reused(view)
        else:
            events.video_archived(view, archive_s)

    def send_link() -> None:
        create_link_artifact(
            links["output"],
            link_text=link_text,
            key=artifact_key(request_key, "output"),
            description=f"The extended video: {uris['output']} (presigned link, valid 7 days)",
        )

    report_writes.put(("report", request_key), send_report)
    report_writes.put(("link", request_key), send_link)


# --- progress while polling ----------------------------------------------------------------


class ProgressArtifact:
    """A progress artifact that follows the task: queued, running, elapsed against typical.

    Created once the task has been in flight `PROGRESS_AFTER_S` (or when it fails), then updated
    on every status change and at most every `PROGRESS_EVERY_S` seconds otherwise, so a long
    generation doesn't turn into hundreds of API writes. Written by `report_writes` in the
    background: a slow Prefect API never holds up the polling.
    """

    def __init__(self, request_key: str, task_id: str, typical_s: float) -> None:
        self.request_key = request_key
        self.task_id = task_id
        self.typical_s = max(float(typical_s), 1.0)
        self.started = time.monotonic()
        self.running_since: float | None = None
        self.status: str | None = None
        self.last_push = 0.0
        self.artifact_id: UUID | None = None
        current_facts().progress = self

    def _push(self, value: float, description: str) -> None:
        def write() -> None:
            if self.artifact_id is None:
                self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
                    value, key=artifact_key(self.request_key, "progress"), description=description
                )
            else:
                update_progress_artifact(self.artifact_id, value, description=description)

        report_writes.put(self, write)

    def wrap(self, on_update: Callable[[Any], None]) -> Callable[[Any], None]:
        """ON_UPDATE, then this artifact's update: a drop-in for the client's `on_update`."""

        def both(response: Any) -> None:
            on_update(response)
            self.update(response)

        return both

    def _describe(self, status: str, now: float) -> str:
        elapsed = now - self.started
        tail = f"task {self.task_id} · request {short(self.request_key)}"
        typical = f"a typical {self.typical_s:.0f} s"
        if self.running_since is None:
            return (
                f"{status} {elapsed:.0f} s, not running yet (generation takes {typical}) · {tail}"
            )
        running = now - self.running_since
        queued = self.running_since - self.started
        if status == "RUNNING":
            return f"RUNNING {running:.0f} s of {typical} (queued {queued:.0f} s) · {tail}"
        return (
            f"{status} after {elapsed:.0f} s (queued {queued:.0f} s, generation {running:.0f} s;"
            f" {typical}) · {tail}"
        )

    def _progress(self, status: str, now: float) -> float:
        if status == "SUCCESS":
            return 100.0
        if self.running_since is None:
            return 0.0
        return round(min(95.0, 100.0 * (now - self.running_since) / self.typical_s), 1)

    @best_effort
    def update(self, response: Any) -> None:
        status = getattr(getattr(response, "status", None), "value", None) or str(
            getattr(response, "status", "?")
        )
        now = time.monotonic()
        changed = status != self.status
        if status == "RUNNING" and self.running_since is None:
            self.running_since = now
        if status in ("SUCCESS", "FAILED") and self.running_since is None:
            self.running_since = now
        self.status = status
        if now - self.started < PROGRESS_AFTER_S:
            return
        if not changed and now - self.last_push < PROGRESS_EVERY_S:
            return
        self.last_push = now
        self._push(self._progress(status, now), self._describe(status, now))

    @best_effort
    def mark_failed(self, exc: BaseException | None) -> None:
        """The run failed: say why, and wait (bounded) until Prefect has it."""
        error = error_fields(exc)
        self._push(0.0, f"FAILED: [{error['code']}] {error['message'][:300]}")
        report_writes.flush()


# --- the failure report --------------------------------------------------------------------


@best_effort
def publish_failure(
    parameters: Mapping[str, Any],
    exc: BaseException | None,
    *,
    request_key: str | None,
    task_id: str | None,
    flow_run_name: str | None,
    timings: Mapping[str, float],
    price: Mapping[str, Any] | None,
    flow_run_id: str | None = None,
) -> None:
    error = error_fields(exc)
    markdown = render_failure_markdown(
        parameters,
        error,
        request_key=request_key,
        task_id=task_id,
        flow_run_name=flow_run_name,
        timings=timings,
        price=price,
    )
    key = artifact_key(request_key) if request_key else None
    description = f"Failed: [{error['code']}] {error['message'][:200]}"
    markdown_for_run(markdown, key, description, flow_run_id)


def markdown_for_run(markdown: str, key: str | None, description: str, run: str | None) -> None:
    """A markdown artifact of the current run — or of run RUN, from a hook that runs outside it
    (a run whose parameters failed validation; a cancel handled by the `serve` runner)."""
    if _in_a_run():
        create_markdown_artifact(markdown, key=key, description=description)
    else:
        _create_for_run(markdown, key, description, run)


def _in_a_run() -> bool:
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        get_run_context()
    except MissingContextError:
        return False
    return True


def _create_for_run(markdown: str, key: str | None, description: str, run: str | None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    artifact = ArtifactCreate(
        type="markdown",
        key=key,
        description=description,
        data=markdown,
        flow_run_id=UUID(run) if run else None,
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(artifact)


__all__ = [
    "ARTIFACT_LINK_TTL_S",
    "ProgressArtifact",
    "artifact_key",
    "markdown_for_run",
    "publish_failure",
    "publish_run",
    "store_contact_sheet",
]
