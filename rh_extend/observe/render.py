"""The reports' text, built from plain data: a run's markdown, a failed run's, a batch's.

Pure functions, no Prefect and no S3 calls: `artifacts` (and the batch flow) publish what they
return. In a run's report every value from the run or the user goes through `_cell` (one line,
no markdown or HTML tricks, the API key scrubbed); the batch's report only keeps its table whole
(`|` → `/`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from rh_extend.observe.common import scrub

# How long the presigned links in a report last: 7 days, SigV4's maximum (shorter when the S3
# credentials themselves expire sooner). The report says so; `artifacts` presigns with it.
ARTIFACT_LINK_TTL_S = 7 * 24 * 3600
STAGES = (
    ("stage", "stage"),
    ("upload", "upload"),
    ("submit", "submit"),
    ("queue", "queued"),
    ("generation", "generation"),
    ("download", "download"),
    ("archive", "archive"),
)


# --- formatting ----------------------------------------------------------------------------


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


# --- a run ---------------------------------------------------------------------------------


def render_run_markdown(
    manifest: dict[str, Any],
    links: Mapping[str, str],
    uris: Mapping[str, str],
    *,
    archive_s: float | None,
    reused: bool,
    removed: Mapping[str, int] | None = None,
) -> str:
    """The run's report: what was asked, what came back, what it cost, where it is, and what
    it removed from the local disk (REMOVED: files and bytes) once archived."""
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
    if removed is not None:
        lines += ["", _removed_line(removed)]
    return "\n".join(lines) + "\n"


def _removed_line(removed: Mapping[str, int]) -> str:
    files = int(removed.get("files", 0))
    return (
        f"**Local copies removed** once archived: {files} file{'' if files == 1 else 's'}, "
        f"{_size(removed.get('bytes', 0))} from the workdir (the download and, for an https or "
        "s3:// source, its staged copy; a local source file stays where it is)."
    )


def render_run_description(manifest: dict[str, Any], *, reused: bool) -> str:
    """The report's one-line description: model, input → output duration, cost, taskId."""
    model = manifest.get("request", {}).get("model", "?")
    return (
        f"{'Reused' if reused else 'Extended'} with {model}: "
        f"{_seconds(manifest.get('input', {}).get('duration_s'))} → "
        f"{_seconds(manifest['output'].get('duration_s'))}, cost {_money(manifest.get('cost'))}"
        f", task {manifest.get('task_id')}"
    )


# --- a failed run --------------------------------------------------------------------------


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


# --- a batch -------------------------------------------------------------------------------


class BatchOutcome(Protocol):
    """What the batch's report and table show of one item (the batch flow's `ItemOutcome`)."""

    @property
    def label(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def output_uri(self) -> str | None: ...
    @property
    def task_id(self) -> str | None: ...
    @property
    def request_key(self) -> str | None: ...
    @property
    def cause(self) -> str | None: ...
    @property
    def flow_run_id(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...


def render_batch_markdown(source: str, line: str, items: Iterable[BatchOutcome]) -> str:
    """The batch's report: its source, its summary LINE, one row per item (output or cause)."""
    lines = [
        f"# Batch {source}",
        "",
        line,
        "",
        "| item | status | output / cause |",
        "|---|---|---|",
    ]
    for o in items:
        detail = o.output_uri if o.status in ("archived", "reused") else (o.cause or "")
        lines.append(f"| {o.label} | {o.status} | {str(detail).replace('|', '/')} |")
    return "\n".join(lines)


def batch_rows(items: Iterable[BatchOutcome]) -> list[dict[str, Any]]:
    """The batch's table: one row per item, missing values as empty strings."""
    return [
        {
            "item": o.label,
            "status": o.status,
            "model": o.model or "",
            "output": o.output_uri or "",
            "task_id": o.task_id or "",
            "request_key": o.request_key or "",
            "cause": o.cause or "",
            "flow_run_id": o.flow_run_id or "",
            "seconds": round(o.seconds, 1),
        }
        for o in items
    ]


_CANCEL_MEANING = {
    "cancelled": "stopped; a rerun asks for `--resubmit` before paying again",
    "not_found": "RunningHub no longer knows it; marked cancelled",
    "already_ended": "had already ended: left for the collector to archive",
    "archived": "already archived: nothing to stop",
}


def render_cancelled_markdown(run_name: str | None, outcomes: list[Any]) -> str:
    """The report of a cancelled run: each RunningHub task it held and what the cancel did."""
    lines = [
        f"# Cancelled: {_cell(run_name or 'run', 120)}",
        "",
        "| request | RunningHub task | cancel | when | meaning |",
        "|---|---|---|---|---|",
    ]
    for item in outcomes:
        meaning = _CANCEL_MEANING.get(
            item.outcome, "the cancel failed: check the task in RunningHub"
        )
        lines.append(
            f"| `{item.request_key[:16]}` | `{item.task_id}` | {_cell(item.outcome, 200)} | "
            f"{item.at} | {meaning} |"
        )
    return "\n".join(lines) + "\n"
