"""Prefect artifacts: every run explains itself in the UI.

Per run (keys derived from the request key, so every run of the same request adds a version):

- `extend-<first 16 hex of the request key>` — markdown: model, prompt, parameters, input →
  output duration, cost (preview and actual), time per stage, taskId, S3 URIs with presigned
  links, and the contact sheet of the junction (a PNG stored next to the video).
- `extend-<…>-output` — a link to the output (presigned).
- `extend-<…>-progress` — progress while polling: queued / running / elapsed against the model's
  typical time.

Per batch: `publish_batch_table(rows)`, one row per video.

Presigned links in artifacts last `ARTIFACT_LINK_TTL_S` (7 days, SigV4's maximum; shorter when
the S3 credentials themselves expire sooner). The S3 URIs next to them are the lasting reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from rh_extend.observe import events
from rh_extend.observe.common import best_effort, error_fields, run_logger, scrub, short
from rh_extend.observe.context import current_facts
from rh_extend.observe.writer import report_writes
from rh_extend.storage import Archive

ARTIFACT_LINK_TTL_S = 7 * 24 * 3600
CONTACT_SHEET = "contact-sheet.png"
MANIFEST = "manifest.json"
SUBMISSION = "submission.json"
PROGRESS_EVERY_S = 5.0
# A task that ends sooner gets no progress artifact: it is over before a progress bar could
# help, its timings are in the run's report, and a batch of short tasks would otherwise spend
# three Prefect writes per video on bars nobody sees.
PROGRESS_AFTER_S = 5.0
STAGES = (
    ("stage", "stage"),
    ("upload", "upload"),
    ("submit", "submit"),
    ("queue", "queued"),
    ("generation", "generation"),
    ("download", "download"),
    ("archive", "archive"),
)


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


def _cell(value: object, limit: int = 500) -> str:
    """Text safe inside a markdown table cell: one line, no pipes, no HTML, no images."""
    text = scrub(str(value), limit)
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    return text.replace("![", "!\\[").replace("`", "'")


def _seconds(value: object) -> str:
    return "—" if value is None else f"{float(value):.2f} s"  # type: ignore[arg-type]


def _money(value: object) -> str:
    return "—" if value is None else f"{float(value):.4g}"  # type: ignore[arg-type]


def _size(num: object) -> str:
    if not isinstance(num, int | float):
        return "—"
    value = float(num)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GB"


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


def render_run_markdown(
    manifest: dict[str, Any],
    links: Mapping[str, str],
    uris: Mapping[str, str],
    *,
    archive_s: float | None,
    reused: bool,
) -> str:
    """The run's report: what was asked, what came back, what it cost, where it is."""
    request = manifest.get("request", {})
    params = dict(request.get("params", {}))
    prompt = params.pop("prompt", None)
    inp, out = manifest.get("input", {}), manifest.get("output", {})
    timings = dict(manifest.get("timings_s", {}))
    if archive_s is not None and not reused:
        timings["archive"] = archive_s
    price = manifest.get("price_preview") or {}
    currency = price.get("currency") or ""
    source = str(request.get("source", ""))
    source_name = source.rsplit("/", 1)[-1].split("?", 1)[0] or source
    added = None
    if out.get("duration_s") is not None and inp.get("duration_s") is not None:
        added = float(out["duration_s"]) - float(inp["duration_s"])
    history = " → ".join(
        f"{h.get('status')} {str(h.get('at', ''))[11:19]}"
        for h in manifest.get("status_history", [])
    )
    title = "Reused archive" if reused else "Extended and archived"
    lines = [
        f"# {title}: {_cell(source_name, 120)} · `{_cell(request.get('model', '?'), 60)}`",
        "",
    ]
    if reused:
        lines += [
            "This run found the request already archived: **no RunningHub call, nothing paid**. "
            "Below is the archived run's record.",
            "",
        ]
    param_text = " · ".join(f"`{_cell(k, 40)}={_cell(v, 80)}`" for k, v in sorted(params.items()))
    cost_text = (
        f"preview {_money(price.get('estimated'))} {_cell(currency, 12)} · "
        f"actual **{_money(manifest.get('cost'))}** {_cell(currency, 12)}"
    )
    if reused:
        cost_text += " (paid by the original run; this run: 0)"
    rows = [
        (
            "model",
            f"`{_cell(request.get('model', '?'), 60)}` — "
            f"`{_cell(request.get('endpoint', ''), 120)}`",
        ),
        ("prompt", _cell(prompt) if prompt else "—"),
        ("parameters", param_text or "—"),
        ("take", _cell(request.get("take")) if request.get("take") else "—"),
        (
            "duration",
            f"{_seconds(inp.get('duration_s'))} input → **{_seconds(out.get('duration_s'))}** "
            f"output (expected {_seconds(out.get('expected_duration_s'))}"
            + (f"; {added:+.2f} s" if added is not None else "")
            + ")",
        ),
        (
            "video",
            f"{inp.get('width')}×{inp.get('height')} {_size(inp.get('size_bytes'))} → "
            f"{out.get('width')}×{out.get('height')} {_size(out.get('size_bytes'))}",
        ),
        ("cost", cost_text),
        ("RunningHub taskId", f"`{_cell(manifest.get('task_id', '?'), 40)}`"),
        ("request key", f"`{_cell(manifest.get('request_key', '?'), 80)}`"),
        ("status history", _cell(history) or "—"),
        ("archived at", _cell(manifest.get("created_at", "—"))),
    ]
    lines += ["| | |", "|---|---|", *(f"| **{k}** | {v} |" for k, v in rows), ""]

    lines += ["## Time per stage", ""]
    header = [name for name, _ in STAGES]
    values = [_seconds(timings.get(field)) for _, field in STAGES]
    known = [timings.get(f) for f in ("stage", "upload", "submit", "poll", "download", "archive")]
    total = sum(float(v) for v in known if v is not None)
    lines += [
        "| " + " | ".join([*header, "total"]) + " |",
        "|" + "---|" * (len(header) + 1),
        "| " + " | ".join([*values, f"**{total:.2f} s**"]) + " |",
        "",
        "*queue* and *generation* are RunningHub's (from the task's status changes); *submit* "
        "includes waiting for a slot of the key's concurrency limit.",
        "",
    ]

    sheet = manifest.get("contact_sheet")
    if sheet and links.get("contact_sheet"):
        frames = sheet.get("frames", [])
        before = ", ".join(f"{f['time_s']:.2f}" for f in frames if f["side"] == "source")
        after = ", ".join(f"{f['time_s']:.2f}" for f in frames if f["side"] == "extension")
        lines += [
            f"## The junction at {float(sheet['junction_s']):.2f} s",
            "",
            f"![contact sheet: source frames at {before} s, extension frames at {after} s]"
            f"({links['contact_sheet']})",
            "",
            f"Source frames at {before} s · extension frames at {after} s.",
            "",
        ]

    lines += [
        "## Files",
        "",
        f"| file | link (valid {ARTIFACT_LINK_TTL_S // 86400} days) | S3 URI |",
        "|---|---|---|",
    ]
    for what, label in (
        ("output", "output video"),
        ("input", "input video"),
        ("contact_sheet", "contact sheet"),
        ("manifest", "manifest"),
        ("submission", "submission record"),
    ):
        if uris.get(what):
            link = f"[open]({links[what]})" if links.get(what) else "—"
            lines.append(f"| {label} | {link} | `{uris[what]}` |")
    return "\n".join(lines) + "\n"


@best_effort
def publish_run(store: Archive, manifest: dict[str, Any], *, reused: bool = False) -> None:
    """The run's markdown and link artifacts, and `rh-extend.video.archived` (or `.reused`):
    composed here, sent by `report_writes` while the run ends."""
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
    markdown = render_run_markdown(manifest, links, uris, archive_s=archive_s, reused=reused)
    description = (
        f"{'Reused' if reused else 'Extended'} with {model}: "
        f"{_seconds(manifest.get('input', {}).get('duration_s'))} → "
        f"{_seconds(manifest['output'].get('duration_s'))}, cost {_money(manifest.get('cost'))}"
        f", task {manifest.get('task_id')}"
    )
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


class PollProgress:
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


def _preview_text(price: Mapping[str, Any] | None) -> str:
    if not price:
        return "—"
    return f"preview {_money(price.get('estimated'))} {_cell(price.get('currency') or '', 12)}"


def render_failure_markdown(
    parameters: Mapping[str, Any],
    error: Mapping[str, str],
    *,
    request_key: str | None,
    task_id: str | None,
    flow_run_name: str | None,
    timings: Mapping[str, float],
    price: Mapping[str, Any] | None,
) -> str:
    shown = {k: v for k, v in parameters.items() if v is not None and k not in ("source", "model")}
    rows = [
        ("error", f"`{_cell(error['code'], 60)}` ({_cell(error['type'], 60)})"),
        ("message", _cell(error["message"])),
        ("model", f"`{_cell(parameters.get('model', '?'), 60)}`"),
        ("source", f"`{_cell(parameters.get('source', '?'), 300)}`"),
        (
            "parameters",
            " · ".join(f"`{_cell(k, 40)}={_cell(v, 80)}`" for k, v in shown.items()) or "—",
        ),
        (
            "RunningHub taskId",
            f"`{task_id}`" if task_id else "— (nothing was submitted by this run)",
        ),
        ("request key", f"`{request_key}`" if request_key else "— (failed before it was known)"),
        ("cost", _preview_text(price)),
        ("flow run", _cell(flow_run_name or "—")),
    ]
    lines = [
        f"# Failed: {_cell(parameters.get('model', '?'), 60)}",
        "",
        "| | |",
        "|---|---|",
        *(f"| **{k}** | {v} |" for k, v in rows),
        "",
    ]
    if timings:
        lines += [
            "## Time per stage (so far)",
            "",
            "| " + " | ".join(timings) + " |",
            "|" + "---|" * len(timings),
            "| " + " | ".join(_seconds(v) for v in timings.values()) + " |",
            "",
        ]
    return "\n".join(lines)


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
) -> None:
    error = error_fields(exc)
    create_markdown_artifact(
        render_failure_markdown(
            parameters,
            error,
            request_key=request_key,
            task_id=task_id,
            flow_run_name=flow_run_name,
            timings=timings,
            price=price,
        ),
        key=artifact_key(request_key) if request_key else None,
        description=f"Failed: [{error['code']}] {error['message'][:200]}",
    )


# --- batches -------------------------------------------------------------------------------

BATCH_COLUMNS = (
    "item",
    "status",
    "model",
    "cost",
    "input_s",
    "output_s",
    "run_s",
    "output",
    "link",
    "error",
    "task_id",
    "flow_run_id",
)
_ALIASES = {
    "item": ("item", "label", "source"),
    "status": ("status", "state"),
    "model": ("model",),
    "cost": ("cost",),
    "input_s": ("input_s", "input_duration_s"),
    "output_s": ("output_s", "output_duration_s"),
    "run_s": ("run_s", "seconds", "duration_s", "elapsed_s"),
    "output": ("output", "output_uri"),
    "link": ("link", "presigned_url"),
    "error": ("error", "cause", "error_message"),
    "task_id": ("task_id",),
    "flow_run_id": ("flow_run_id",),
}


def _as_mapping(row: Any) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    if hasattr(row, "model_dump"):
        return dict(row.model_dump(mode="json"))
    return dict(vars(row))


def _first(row: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return value
    return None


def _presigner() -> Callable[[str], str | None]:
    cache: dict[str, Any] = {}

    def presign(uri: str) -> str | None:
        if not uri.startswith("s3://"):
            return uri if uri.startswith(("http://", "https://")) else None
        try:
            if "s3" not in cache:
                from rh_extend.settings import load_settings
                from rh_extend.storage import s3_client

                cache["s3"] = s3_client(load_settings().s3_checksums)
            from rh_extend.storage import presign_s3_uri

            return presign_s3_uri(cache["s3"], uri, ARTIFACT_LINK_TTL_S)
        except Exception:
            return None

    return presign


def batch_rows(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """One table row per video, with BATCH_COLUMNS; missing values are empty strings."""
    presign = _presigner()
    table = []
    for raw in rows:
        row = _as_mapping(raw)
        cells: dict[str, Any] = {col: _first(row, _ALIASES[col]) for col in BATCH_COLUMNS}
        if isinstance(cells["error"], Mapping):
            cells["error"] = f"[{cells['error'].get('code')}] {cells['error'].get('message')}"
        if cells["error"] is not None:
            cells["error"] = scrub(str(cells["error"]), 300)
        if cells["link"] is None and cells["output"]:
            cells["link"] = presign(str(cells["output"]))
        for col in ("cost", "input_s", "output_s", "run_s"):
            if isinstance(cells[col], int | float):
                cells[col] = round(float(cells[col]), 3)
        table.append({col: "" if value is None else value for col, value in cells.items()})
    return table


@best_effort
def publish_batch_table(
    rows: Iterable[Any],
    *,
    key: str = "extend-batch-videos",
    description: str | None = None,
) -> UUID:
    """A table artifact, one row per video: status, cost, durations, output link, error.

    ROWS: mappings (or pydantic models / objects) with any of these fields — `item` | `label` |
    `source`, `status`, `model`, `cost`, `input_duration_s`, `output_duration_s`, `seconds` |
    `duration_s` (the item's run time), `output_uri` | `output`, `presigned_url` | `link`,
    `error` | `cause` (text, or {"code", "message"}), `task_id`, `flow_run_id`. An s3:// output
    gets a presigned link. Returns the artifact id (None if Prefect could not take it; the batch
    goes on either way).
    """
    table = batch_rows(rows)
    if description is None:
        counts: dict[str, int] = {}
        for row in table:
            counts[str(row["status"] or "?")] = counts.get(str(row["status"] or "?"), 0) + 1
        cost = sum(float(row["cost"]) for row in table if isinstance(row["cost"], int | float))
        description = (
            f"{len(table)} videos: "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            + f" · cost {cost:.4g}"
        )
    artifact_id = cast(UUID, create_table_artifact(table, key=key, description=description))
    run_logger().info("batch table artifact %s: %s", key, description)
    return artifact_id


__all__ = [
    "ARTIFACT_LINK_TTL_S",
    "PollProgress",
    "artifact_key",
    "batch_rows",
    "publish_batch_table",
    "publish_failure",
    "publish_run",
    "render_run_markdown",
    "store_contact_sheet",
]
