"""`rh-extend runs`: recent `extend-video` runs, read from the Prefect API.

State, name and duration come from the flow runs; model from their parameters; cost, taskId and
output URI from the run's `rh-extend.*` events (docs/observability.md), so the table needs nothing
but the Prefect API the runs reported to (`PREFECT_API_URL`, or the local ephemeral database).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from rh_extend.observe import events
from rh_extend.request import flat_parameters

FLOW_NAME = "extend-video"
MAX_EVENT_PAGES = 40
PIPED_WIDTH = 320
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class RunRow:
    flow_run_id: str
    name: str
    state: str
    started: str | None
    model: str
    duration_s: float | None
    cost: float | None
    output_uri: str | None
    task_id: str | None
    request_key: str | None
    reused: bool
    message: str | None


def parse_since(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w` (a bare number means hours)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise ValueError(f"--since {text!r}: use a number with s, m, h, d or w, e.g. 24h")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "h"])


def _flow_run_id(event: Any) -> str | None:
    for resource in event.related:
        if resource.role == "flow-run":
            return str(resource.id).removeprefix("prefect.flow-run.")
    return None


async def _event_facts(client: Any, since: datetime) -> dict[str, dict[str, Any]]:
    """Per flow run id: what its `rh-extend.*` events said, later events overriding earlier."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
    )

    event_filter = EventFilter(
        occurred=EventOccurredFilter.model_validate(
            {"since": since, "until": datetime.now(UTC) + timedelta(minutes=1)}
        ),
        event=EventNameFilter(name=list(events.ALL)),
        order=EventOrder.ASC,
    )
    page = await client.read_events(filter=event_filter, limit=50)  # the API's page maximum
    found = list(page.events)
    pages = 1
    while page.next_page and pages < MAX_EVENT_PAGES:
        page = await client.read_events_page(page.next_page)
        found.extend(page.events)
        pages += 1
    facts: dict[str, dict[str, Any]] = {}
    for event in sorted(found, key=lambda e: e.occurred):
        run_id = _flow_run_id(event)
        if run_id is None:
            continue
        into = facts.setdefault(run_id, {})
        payload = dict(event.payload or {})
        for name in ("task_id", "request_key", "output_uri"):
            if payload.get(name):
                into[name] = payload[name]
        if event.event in (events.SUCCEEDED, events.ARCHIVED, events.REUSED):
            into["cost"] = payload.get("cost")
        if event.event == events.REUSED:
            into["reused"] = True
    return facts


def _duration(run: Any) -> float | None:
    if run.start_time is None:
        return None
    end = run.end_time or datetime.now(UTC)
    return round(float((end - run.start_time).total_seconds()), 1)


def _model(run: Any) -> str:
    for tag in run.tags or []:
        if tag.startswith("model:"):
            return str(tag.removeprefix("model:"))
    return str(flat_parameters(run.parameters).get("model", "?"))


async def read_runs(since: timedelta, limit: int = 50) -> list[RunRow]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    cutoff = datetime.now(UTC) - since
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            flow_run_filter=FlowRunFilter(
                expected_start_time=FlowRunFilterExpectedStartTime.model_validate(
                    {"after_": cutoff}
                )
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )
        facts = await _event_facts(client, cutoff - timedelta(minutes=5)) if runs else {}
    rows = []
    for run in runs:
        seen = facts.get(str(run.id), {})
        state = run.state
        started = run.start_time or run.expected_start_time
        rows.append(
            RunRow(
                flow_run_id=str(run.id),
                name=run.name,
                state=str(state.name) if state else "?",
                started=started.isoformat(timespec="seconds") if started else None,
                model=_model(run),
                duration_s=_duration(run),
                cost=seen.get("cost"),
                output_uri=seen.get("output_uri"),
                task_id=seen.get("task_id"),
                request_key=seen.get("request_key"),
                reused=bool(seen.get("reused")),
                message=None if state is None or state.is_completed() else state.message,
            )
        )
    return rows


_STATE_STYLE = {"Completed": "green", "Failed": "red", "Crashed": "red", "Running": "cyan"}


def render(rows: list[RunRow], since_text: str) -> Table:
    table = Table(title=f"extend-video runs, last {since_text}", title_justify="left")
    for column, justify in (
        ("started (UTC)", "left"),
        ("run", "left"),
        ("state", "left"),
        ("model", "left"),
        ("cost", "right"),
        ("duration", "right"),
        ("output / error", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        style = _STATE_STYLE.get(row.state, "yellow")
        state = f"[{style}]{row.state}[/]" + (" (reused)" if row.reused else "")
        cost = "—" if row.cost is None else f"{row.cost:.4g}"
        duration = "—" if row.duration_s is None else f"{row.duration_s:.1f} s"
        detail = row.output_uri or (row.message or "")[:120]
        started = (row.started or "")[:19].replace("T", " ")
        table.add_row(started, row.name, state, row.model, cost, duration, detail)
    return table


def main(since_text: str, limit: int, as_json: bool, out: Console, err: Console) -> int:
    """What `rh-extend runs` does; returns the exit code."""
    try:
        since = parse_since(since_text)
    except ValueError as exc:
        err.print(f"[bold red]error[/] {exc}")
        return 2
    rows = asyncio.run(read_runs(since, limit))
    if as_json:
        print(json.dumps([asdict(row) for row in rows]))
        return 0
    if not rows:
        out.print(f"No extend-video runs in the last {since_text}.")
        return 0
    # Piped: wide enough for whole S3 URIs, rather than rich's 80 columns.
    console = out if out.is_terminal else Console(file=out.file, width=PIPED_WIDTH)
    console.print(render(rows, since_text))
    return 0
