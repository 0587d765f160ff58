"""`collect_orphans`: no paid result is lost.

Finds the requests RunningHub was paid for that no live run will archive (`rh_extend.collector`:
the run crashed, was killed, was cancelled after its task ended, or outlived its poll deadline),
asks RunningHub about each, and:

- SUCCESS: downloads, verifies and archives it as its run would have, in a flow run of its own
  (`collect-result`, its report and events on the request, as the run's would be);
- FAILED or CANCEL (or unknown to RunningHub): records the end in the submission record;
- still queued or running: leaves it — or, past `cancel_running_after_s`, cancels it.

It never submits. Runs on a schedule (the `collect-orphans` deployment) and as `rh-extend collect`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from rh_extend import observe
from rh_extend.clients import archive, runninghub_client
from rh_extend.collector import Orphan, find_orphans, prefect_owner_state
from rh_extend.flows.extend_video import check_settings
from rh_extend.flows.manifest import build_manifest
from rh_extend.result import ExtendResult
from rh_extend.settings import load_settings
from rh_extend.submissions import SubmissionBook
from rh_extend.tasks import Finished, StagedSource, archive_run, download_output
from rh_extend.tasks.stage import stage_source
from runninghub import Failed, RunningHubClient, Succeeded, TaskNotFoundError, TaskResponse

# A run polls at most RH_EXTEND_POLL_TIMEOUT_S; one that keeps a live state this much longer
# than that is taken for dead (a SIGKILLed process never reports its end).
STALE_MARGIN_S = 600.0
COLLECTOR = "collect-orphans"

Outcome = Literal["archived", "ended", "cancelled", "running", "error"]


class Collected(BaseModel):
    request_key: str
    task_id: str
    outcome: Outcome
    detail: str = ""
    owner_state: str | None = None
    flow_run_id: str | None = None  # the collect-result run that archived it


class CollectSummary(BaseModel):
    orphans: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    items: list[Collected] = Field(default_factory=list)

    def line(self) -> str:
        if not self.orphans:
            return "no orphaned paid results"
        counts = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
        return f"{self.orphans} orphaned paid result(s): {counts}"


def _result_run_name() -> str:
    return f"collect-{str(flow_run.parameters['request_key'])[:12]}"


def _staged_again(origin: dict[str, Any]) -> StagedSource | None:
    """The source read again, for `input.*` in the archive; None when it can't be read from here
    (a local file on the machine that died) or is no longer the video that was sent."""
    source = origin.get("request", {}).get("source")
    if not source:
        return None
    try:
        staged = stage_source.fn(str(source), str(origin["request"]["model"]))
    except Exception as exc:
        get_run_logger().warning("source %s not readable here (%s): output only", source, exc)
        return None
    return staged if staged.sha256 == origin.get("input", {}).get("sha256") else None


@flow(name="collect-result", flow_run_name=_result_run_name, log_prints=True)
def collect_result(request_key: str, task_id: str) -> ExtendResult:
    """Archive the finished task of an orphaned request, as its own run would have."""
    settings = load_settings()
    store = archive(settings)
    record = SubmissionBook(store).read(request_key) or {}
    origin = record.get("origin") or {"request": {"model": record.get("model")}, "input": {}}
    origin.setdefault("expected_duration_s", None)
    with runninghub_client(settings) as client:
        response = client.query(task_id)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    finished = Finished(response=response, history=[{"status": str(response.status), "at": at}])
    downloaded = download_output(request_key, task_id, response)
    manifest = build_manifest(request_key, origin, finished, downloaded, {})
    manifest["collected"] = {
        "by_flow_run": str(flow_run.id),
        "owner_flow_run": record.get("flow_run_id"),
        "at": at,
    }
    observe.task_succeeded(manifest)
    staged = _staged_again(origin)
    if staged is None:
        manifest["input"]["note"] = "not archived: the collector could not read the source"
    result = archive_run(request_key, staged, downloaded, manifest)
    return result.model_copy(update={"flow_run_id": str(flow_run.id)})


def _query(client: RunningHubClient, task_id: str) -> TaskResponse | None:
    try:
        return client.query(task_id)
    except TaskNotFoundError:
        return None


def _collect(
    orphan: Orphan, client: RunningHubClient, book: SubmissionBook, cancel_after_s: float | None
) -> Collected:
    found = Collected(
        request_key=orphan.request_key,
        task_id=orphan.task_id,
        outcome="running",
        owner_state=orphan.owner_state,
    )
    response = _query(client, orphan.task_id)
    if response is None:
        book.record_end(orphan.request_key, "UNKNOWN", "RunningHub no longer knows it", COLLECTOR)
        return found.model_copy(update={"outcome": "ended", "detail": "unknown to RunningHub"})
    state = response.state
    if isinstance(state, Succeeded):
        result = collect_result(orphan.request_key, orphan.task_id)
        return found.model_copy(
            update={"outcome": "archived", "detail": result.output_uri or "",
                    "flow_run_id": result.flow_run_id}
        )  # fmt: skip
    if isinstance(state, Failed):
        book.record_end(orphan.request_key, str(response.status), state.message, COLLECTOR)
        return found.model_copy(update={"outcome": "ended", "detail": state.message})
    if cancel_after_s is not None and orphan.age_s > cancel_after_s:
        outcome = client.cancel(orphan.task_id)
        book.record_cancel(orphan.request_key, orphan.task_id, outcome, str(flow_run.id))
        return found.model_copy(update={"outcome": "cancelled", "detail": outcome})
    return found.model_copy(update={"detail": str(response.status)})


@flow(name="collect-orphans", log_prints=True)
def collect_orphans(
    min_age_s: float = 60.0, cancel_running_after_s: float | None = None
) -> CollectSummary:
    """Archive the paid results no live run will archive; never submits.

    Records younger than `min_age_s` are left to their run. A task still running when its
    record is older than `cancel_running_after_s` is cancelled (none, by default).
    """
    settings = load_settings()
    check_settings(settings)
    store = archive(settings)
    book = SubmissionBook(store)
    stale_after_s = settings.poll_timeout_s + STALE_MARGIN_S
    orphans = find_orphans(
        store, prefect_owner_state, min_age_s=min_age_s, stale_after_s=stale_after_s
    )
    items = []
    with runninghub_client(settings) as client:
        for orphan in orphans:
            try:
                items.append(_collect(orphan, client, book, cancel_running_after_s))
            except Exception as exc:  # one orphan's trouble doesn't stop the others
                items.append(
                    Collected(request_key=orphan.request_key, task_id=orphan.task_id,
                              outcome="error", detail=f"{type(exc).__name__}: {exc}",
                              owner_state=orphan.owner_state)
                )  # fmt: skip
    summary = CollectSummary(
        orphans=len(items), counts=dict(Counter(item.outcome for item in items)), items=items
    )
    get_run_logger().info("%s", summary.line())
    return summary


__all__ = ["CollectSummary", "Collected", "collect_orphans", "collect_result"]
