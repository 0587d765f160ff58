"""The RunningHub tasks a flow run holds: labelled on the run, cancelled with it, reported when it
crashes.

Cancel means cancel: a cancelled run stops the RunningHub tasks it holds.

A run that has a taskId (submitted, or resumed from the submission record) labels its Prefect
flow run `rh-extend.task.<request key>` = taskId (`hold`): visible in the UI, and readable by
whoever handles the cancel — the run's own process, or the `serve` runner after it killed the run.
The flows' `on_cancellation` hook (`cancel_paid_work`) then, for every held request not archived
yet: asks RunningHub to cancel the task, marks the submission record `cancelled` (so a rerun
doesn't pay again unless `--resubmit`), emits `rh-extend.task.cancelled` and leaves a report on
the run. A batch's hook does the same for its inline items (their labels are on the batch's run)
and its subflows', and asks Prefect to cancel the deployment runs it dispatched.

A task that had already ended (RunningHub's 817) is left alone: its result is the collector's
to archive, since it was paid for. A crashed run (`report_crash`, its `on_crashed` hook: the
process died, and whoever saw it — the runner, the worker, the engine — runs the hook) emits
`rh-extend.task.failed` with cause `crashed` for each task it held; the tasks themselves go on,
and the collector (`flows/collect_orphans.py`) archives what they produce.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from rh_extend.clients import archive, runninghub_client
from rh_extend.settings import load_settings
from rh_extend.submissions import SubmissionBook
from runninghub import CancelOutcome, RunningHubError

LABEL_PREFIX = "rh-extend.task."
# Prefect's server patches labels by read-merge-write: two items of one batch labelling the
# batch's run at the same moment would lose one label. One PATCH at a time per process (a run's
# labels are written by its own process only).
_labelling = threading.Lock()
MANIFEST = "manifest.json"
logger = logging.getLogger("rh_extend.held_tasks")


@dataclass(frozen=True)
class Cancelled:
    """What the cancel of one held request came to."""

    request_key: str
    task_id: str
    outcome: CancelOutcome | str  # or "archived" (nothing to stop), "error: …"
    at: str


def hold(request_key: str, task_id: str) -> None:
    """Label the current flow run as holding TASK_ID for REQUEST_KEY (one PATCH)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        with _labelling, get_client(sync_client=True) as client:
            client.update_flow_run_labels(
                context.flow_run.id, {f"{LABEL_PREFIX}{request_key}": task_id}
            )
    except Exception as exc:  # the run goes on; a cancel then won't find this task
        logger.warning("could not label flow run with task %s: %r", task_id, exc)


def held_by(labels: dict[str, Any] | None) -> dict[str, str]:
    """Request key → taskId, from a flow run's labels."""
    return {
        name.removeprefix(LABEL_PREFIX): str(value)
        for name, value in (labels or {}).items()
        if name.startswith(LABEL_PREFIX) and value
    }


def cancel_held(held: dict[str, str], flow_run_id: str) -> list[Cancelled]:
    """Cancel every held task whose request is not archived; record each outcome."""
    settings = load_settings()
    store = archive(settings)
    book = SubmissionBook(store)
    done: list[Cancelled] = []
    with runninghub_client(settings) as client:
        for request_key, task_id in sorted(held.items()):
            at = datetime.now(UTC).isoformat(timespec="seconds")
            if store.read_json(request_key, MANIFEST) is not None:
                done.append(Cancelled(request_key, task_id, "archived", at))
                continue
            try:
                outcome: str = client.cancel(task_id)
            except RunningHubError as exc:
                outcome = f"error: {exc}"
            if outcome in ("cancelled", "not_found"):
                book.record_cancel(request_key, task_id, outcome, flow_run_id)
            done.append(Cancelled(request_key, task_id, outcome, at))
    return done


def _runs_of(client: Any, flow_run_id: UUID) -> list[Any]:
    """The run and the runs it started (subflows, dispatched deployment runs)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
        )
    )
    return [client.read_flow_run(flow_run_id), *children]


def _cancel_dispatched(client: Any, runs: list[Any]) -> None:
    """Runs a worker executes (deployment runs) get Prefect's cancel: their own hooks follow."""
    from prefect.states import Cancelling

    for run in runs:
        if run.deployment_id and run.state and not run.state.is_final():
            client.set_flow_run_state(run.id, Cancelling(message="its batch was cancelled"))


def cancel_paid_work(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_cancellation` hook of `extend_video` and `extend_batch`."""
    from prefect.client.orchestration import get_client

    from rh_extend.observe import report_cancelled

    with get_client(sync_client=True) as client:
        runs = _runs_of(client, flow_run.id)
        _cancel_dispatched(client, runs[1:])
    held: dict[str, str] = {}
    for run in runs:
        if run.id == flow_run.id or not run.deployment_id:  # dispatched runs cancel their own
            held.update(held_by(run.labels))
    if not held:
        logger.info("flow run %s held no RunningHub task: nothing to cancel", flow_run.id)
        return
    outcomes = cancel_held(held, str(flow_run.id))
    report_cancelled(str(flow_run.id), flow_run.name, outcomes)


def _held_by_run(flow_run: Any) -> dict[str, str]:
    """The run's held tasks, from its labels as the API has them now (the hook's copy may be
    older than the last `hold`)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return held_by(client.read_flow_run(flow_run.id).labels)


def report_crash(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_crashed` hook of `extend_video`: `rh-extend.task.failed`, cause `crashed`, per task."""
    from rh_extend.observe import report_crashed

    held = _held_by_run(flow_run)
    message = str(getattr(state, "message", None) or "the run crashed")
    for request_key, task_id in sorted(held.items()):
        report_crashed(request_key, task_id, message, flow_run_id=str(flow_run.id))
