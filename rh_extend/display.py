"""What a person sees in the terminal: one progress row per stage and a short summary."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from rh_extend.result import ExtendResult
from rh_extend.stage_events import StageEvent

BYTE_STAGES = {"upload", "download"}


class RunContext:
    """Remembers the request key and taskId as they become known, for errors and --json."""

    def __init__(self) -> None:
        self.request_key: str | None = None
        self.task_id: str | None = None

    def __call__(self, event: StageEvent) -> None:
        self.request_key = event.data.get("request_key", self.request_key)
        self.task_id = event.data.get("task_id", self.task_id)


class StageBars:
    """The terminal's progress bars: a rich Progress with a row per stage, fed by stage events."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(bar_width=28),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.rows: dict[str, TaskID] = {}

    def __enter__(self) -> StageBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: StageEvent) -> None:
        if event.kind == "info":
            return
        row = self.rows.get(event.stage)
        if row is None:
            row = self.progress.add_task("", stage=event.stage, detail="", total=None)
            self.rows[event.stage] = row
        self.progress.update(row, detail=self._detail(event), **self._amounts(event))
        if event.kind == "done":
            total = self.progress.tasks[self.rows[event.stage]].total or 1
            self.progress.update(row, total=total, completed=total)

    @staticmethod
    def _amounts(event: StageEvent) -> dict[str, Any]:
        amounts: dict[str, Any] = {}
        if event.total is not None:
            amounts["total"] = event.total
        if event.completed is not None:
            amounts["completed"] = event.completed
        return amounts

    @staticmethod
    def _detail(event: StageEvent) -> str:
        if event.stage in BYTE_STAGES and event.completed is not None:
            total = f" / {event.total / 1e6:.1f}" if event.total else ""
            return f"{event.completed / 1e6:.1f}{total} MB"
        if event.stage == "poll" and event.completed is not None:
            return f"{event.message} · {event.completed:.0f} s"
        return event.message


def quiet_prefect_console() -> None:
    """Prefect's console log lines would tear the progress display; the UI keeps them all."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.WARNING)


def summary(console: Console, result: ExtendResult) -> None:
    """Label/value lines that are never cut: people copy these URIs."""
    rows = [
        ("model", result.model),
        ("task", result.task_id or "-"),
        ("request key", result.request_key or "-"),
        ("output", result.output_uri or "-"),
        ("manifest", result.manifest_uri or "-"),
        (
            "duration",
            "-" if result.output_duration_s is None else f"{result.output_duration_s:.2f} s",
        ),
        ("cost", "-" if result.cost is None else f"{result.cost:.2f}"),
    ]
    if result.presigned_url:
        rows.append(("download", result.presigned_url))
    if result.reused_archive:
        rows.append(("note", "already archived earlier: nothing was submitted or paid"))
    for label, value in rows:
        console.print(f"  [bold]{label:<12}[/] {value}", soft_wrap=True, highlight=False)
