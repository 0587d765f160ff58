"""What `extend_video` calls: flow hooks (tags at start, report on failure) and the notes the flow
takes on the way (request key, taskId) so the failure report can name them."""

from __future__ import annotations

from typing import Any

from rh_extend.observe import artifacts, events
from rh_extend.observe.common import best_effort, run_logger, short
from rh_extend.observe.context import current_facts, facts_for, forget
from rh_extend.observe.render import render_cancelled_markdown
from rh_extend.observe.writer import report_writes
from rh_extend.request import flat_parameters


def model_tags(model: object) -> list[str]:
    """`model:<id>` for a known model id (an unknown one fails the run anyway)."""
    from runninghub import CATALOG

    return [f"model:{model}"] if isinstance(model, str) and model in CATALOG else []


@best_effort
def tag_run(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_running` hook: add `model:<id>` to the flow run's tags, whoever started it (the CLI,
    a deployment, a batch, an event trigger)."""
    from prefect.client.orchestration import get_client

    wanted = model_tags(flat_parameters(flow_run.parameters).get("model"))
    tags = list(flow_run.tags or [])
    missing = [tag for tag in wanted if tag not in tags]
    if not missing:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, tags=[*tags, *missing])
    flow_run.tags = [*tags, *missing]


@best_effort
def track_run(request_key: str, model: str, timings: dict[str, float]) -> None:
    """Called by the flow once the request key is known."""
    facts = current_facts()
    facts.request_key, facts.model, facts.timings = request_key, model, timings


@best_effort
def submitted(
    request_key: str,
    model: str,
    submission: Any,
    price: dict[str, Any] | None,
    timings: dict[str, float],
) -> None:
    """Called by the flow once it has a taskId: emits `rh-extend.task.submitted` for a new submit
    (not for one resumed from the submission record: that one was announced when it was made)."""
    facts = current_facts()
    facts.task_id, facts.price = submission.task_id, price
    if submission.resumed:
        run_logger().info(
            "[%s task %s] resuming the task submitted earlier", short(request_key), facts.task_id
        )
        return
    events.task_submitted(request_key, model, str(submission.task_id), price, timings)


def _exception(state: Any) -> BaseException | None:
    try:
        value = state.result(raise_on_failure=False)
    except BaseException as exc:  # a result that can't be read is itself the best clue
        return exc
    return value if isinstance(value, BaseException) else None


@best_effort
def report_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_failure` hook of `extend_video`: see `report_failed_run`."""
    run_id = str(flow_run.id)
    report_failed_run(
        run_id,
        flow_run.name,
        flat_parameters(flow_run.parameters),
        _exception(state),
        run_id=run_id,
    )


@best_effort
def report_failed_run(
    scope_id: str,
    run_name: str | None,
    parameters: dict[str, Any],
    exc: BaseException | None,
    *,
    run_id: str | None,
) -> None:
    """`rh-extend.task.failed`, a failure report artifact, the progress artifact marked failed —
    for the run (or inline batch item) whose facts are kept under SCOPE_ID."""
    facts = facts_for(scope_id)
    request_key = facts.request_key if facts else None
    task_id = (facts.task_id if facts else None) or getattr(exc, "task_id", None)
    model = (facts.model if facts else None) or parameters.get("model")
    timings = dict(facts.timings) if facts else {}
    price = facts.price if facts else None
    events.task_failed(
        request_key,
        str(model) if model else None,
        str(task_id) if task_id else None,
        exc,
        flow_run_id=run_id,
        flow_run_name=run_name,
        timings=timings,
        price=price,
    )
    artifacts.publish_failure(
        parameters,
        exc,
        request_key=request_key,
        task_id=str(task_id) if task_id else None,
        flow_run_name=run_name,
        timings=timings,
        price=price,
        flow_run_id=run_id,
    )
    if facts and facts.progress is not None:
        facts.progress.mark_failed(exc)
    forget(scope_id)


@best_effort
def finished(flow: Any, flow_run: Any, state: Any) -> None:
    """`on_completion` hook: the progress artifact's last write sent, the run's notes dropped."""
    report_writes.flush()
    forget(str(flow_run.id))


@best_effort
def report_cancelled(flow_run_id: str, run_name: str | None, outcomes: list[Any]) -> None:
    """After a cancel hook stopped a run's RunningHub tasks: an event per task, one report."""
    for item in outcomes:
        if item.outcome in ("cancelled", "not_found"):
            events.task_cancelled(
                item.request_key, item.task_id, item.outcome, item.at, flow_run_id=flow_run_id
            )
    artifacts.markdown_for_run(
        render_cancelled_markdown(run_name, outcomes),
        None,
        f"Cancelled: {sum(o.outcome == 'cancelled' for o in outcomes)} RunningHub task(s) stopped",
        flow_run_id,
    )


class RunCrashedError(Exception):
    """The run's process died while it held a RunningHub task (a hook's view of it)."""

    code = "CRASHED"


@best_effort
def report_crashed(request_key: str, task_id: str, message: str, *, flow_run_id: str) -> None:
    events.task_failed(
        request_key,
        None,
        task_id,
        RunCrashedError(message),
        flow_run_id=flow_run_id,
        flow_run_name=None,
        timings={},
        price=None,
    )
