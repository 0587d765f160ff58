"""How batch items run: each valid item runs `extend_video`, at most `max_parallel` at once.

- `subflow` (default): as a subflow inside a task of the batch's run, on a thread pool: one
  process, no worker needed; each video has its own flow run page.
- `task`: the same chain inline, as one task run of the batch's run per video (its steps are
  plain calls): the leanest for big batches — a subflow and its seven task runs cost the client
  and the Prefect server ≈ 0.5 s of CPU per video, one task run ≈ 0.03 s (docs/benchmarks.md,
  P1). Reports, events and the contact sheet are the same; they belong to the batch's run. A
  transient failure reruns the item's chain (safe: it resumes what it finds archived or
  submitted) up to `ITEM_RETRIES` times.
- `deployment`: as a run of the `extend-video` deployment (`run_deployment`, linked to the
  batch's run, with an idempotency key of the batch + the item), so any worker of the pool can
  take it.

Items are checked first: a bad item, or a repeat of an earlier item's request, is an outcome
without a run. One item's failure never stops the others.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from rh_extend import observe, workdir
from rh_extend.batch_items import BatchItem
from rh_extend.flows.batch.outcomes import (
    ItemOutcome,
    check_item,
    item_request,
    item_resubmit,
    outcome_from_exception,
    outcome_from_result,
    outcome_from_state,
)
from rh_extend.flows.direct import direct_run
from rh_extend.flows.extend_video import INLINE_STEPS, extend_video, run_chain
from rh_extend.request import flat_parameters
from rh_extend.settings import load_settings
from rh_extend.tasks.common import may_pass, retry_on_storage
from runninghub import RunningHubError

Dispatch = Literal["subflow", "task", "deployment"]

EXTEND_VIDEO_DEPLOYMENT = "extend-video/extend-video"
ITEM_RETRIES = 2


def flow_parameters(item: BatchItem) -> dict[str, Any]:
    """`extend_video`'s parameters for the item, as JSON (a deployment run's parameters)."""
    request = item_request(item).model_dump(mode="json")
    return {"request": request, "resubmit": item_resubmit(item)}


def _logged(outcome: ItemOutcome) -> ItemOutcome:
    cause = f" ({outcome.cause})" if outcome.cause else ""
    get_run_logger().info("%s: %s%s", outcome.label, outcome.status, cause)
    return outcome


# ------------------------------------------------------------------------------- one item


def _as_deployment_run(
    item: BatchItem, deployment: str, idempotency_key: str | None, timeout_s: float | None
) -> ItemOutcome:
    from prefect.deployments import run_deployment

    started = time.monotonic()
    child: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here, not a coroutine
        deployment,
        parameters=flow_parameters(item),
        idempotency_key=idempotency_key,
        timeout=timeout_s,
        poll_interval=2,
    )
    seconds = time.monotonic() - started
    if child.state is None or not child.state.is_final():
        state_name = child.state.name if child.state else "unknown"
        return ItemOutcome(
            label=item.label,
            source=item.source,
            model=item.model,
            status="failed",
            error_type="Timeout",
            error_code="TIMEOUT",
            cause=f"flow run {child.id} still {state_name} after {timeout_s} s",
            flow_run_id=str(child.id),
            seconds=seconds,
        )
    return outcome_from_state(item, child.state, str(child.id), seconds)


def _as_subflow(item: BatchItem) -> ItemOutcome:
    started = time.monotonic()
    try:
        with direct_run(item.model):  # no heartbeats: the batch run beats for this process
            result = extend_video(item_request(item), item_resubmit(item))
    except Exception as exc:  # the item's failure is its outcome, not the batch's
        return outcome_from_exception(item, exc, seconds=time.monotonic() - started)
    return outcome_from_result(item, result, seconds=time.monotonic() - started)


@task(name="extend-item", task_run_name="{item.label}", cache_policy=NO_CACHE, retries=0)
def extend_item(
    item: BatchItem,
    dispatch: Dispatch = "subflow",
    deployment: str = EXTEND_VIDEO_DEPLOYMENT,
    idempotency_key: str | None = None,
    timeout_s: float | None = None,
) -> ItemOutcome:
    """One item; never raises for the item's own failure (that is its outcome)."""
    if dispatch == "deployment":
        return _logged(_as_deployment_run(item, deployment, idempotency_key, timeout_s))
    return _logged(_as_subflow(item))


@task(
    name="extend-inline",
    task_run_name="{item.label}",
    cache_policy=NO_CACHE,
    retries=ITEM_RETRIES,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_storage,
)
def extend_inline(item: BatchItem) -> ItemOutcome:
    """One item, its chain run inline in this task run (`dispatch="task"`).

    A transient failure is raised while retries are left, so Prefect reruns the chain; any other
    failure, or the last attempt's, is the item's outcome, reported like a failed `extend_video`
    run (event, failure artifact).
    """
    started = time.monotonic()
    context = TaskRunContext.get()
    assert context is not None  # a task body always runs in its task run's context
    run = context.task_run
    parameters = flow_parameters(item)
    scope = f"task-run/{run.id}"
    batch_run_id = str(run.flow_run_id)
    with observe.run_scope(scope) as facts, workdir.tracked_copies() as copies:
        try:
            result = run_chain(INLINE_STEPS, item_request(item), item_resubmit(item))
        except Exception as exc:
            if may_pass(exc) and run.run_count <= ITEM_RETRIES:
                _remove_copies(item, copies)  # the rerun stages and downloads afresh
                raise
            outcome = outcome_from_exception(
                item,
                exc,
                request_key=facts.request_key,
                task_id=facts.task_id,
                flow_run_id=batch_run_id,
                seconds=time.monotonic() - started,
            )
            observe.report_failed_run(
                scope, run.name, flat_parameters(parameters), exc, run_id=batch_run_id
            )
        else:
            outcome = outcome_from_result(item, result, seconds=time.monotonic() - started)
    return _logged(outcome)  # its report is sent in the background; the batch waits at its end


def _remove_copies(item: BatchItem, copies: list[Path]) -> None:
    """The local copies of an inline chain that will be run again, removed."""
    try:
        removal = workdir.remove_run_copies(load_settings().workdir, copies)
    except OSError as exc:
        get_run_logger().warning("%s: could not remove local copies (%s)", item.label, exc)
        return
    if removal.folders:
        get_run_logger().info(
            "%s: removed the failed attempt's local copies: %s", item.label, removal.describe()
        )


# ------------------------------------------------------------------------------- the batch


def _plan(items: list[BatchItem]) -> tuple[dict[int, ItemOutcome], dict[int, str]]:
    """(outcomes of the items that won't run: invalid or duplicate, keys of those that will),
    both by the item's index."""
    outcomes: dict[int, ItemOutcome] = {}
    first_of: dict[str, int] = {}
    keys: dict[int, str] = {}
    for index, item in enumerate(items):
        try:
            key = check_item(item)
        except (ValueError, RunningHubError) as exc:
            outcomes[index] = outcome_from_exception(item, exc)
            continue
        if key in first_of:
            outcomes[index] = ItemOutcome(
                label=item.label,
                source=item.source,
                model=item.model,
                status="duplicate",
                cause=f"same request as {items[first_of[key]].label}",
            )
            continue
        first_of[key] = index
        keys[index] = key
    return outcomes, keys


def _submit(
    runner: ThreadPoolTaskRunner[Any],
    item: BatchItem,
    key: str,
    dispatch: Dispatch,
    deployment: str,
    item_timeout_s: float | None,
) -> PrefectFuture[Any]:
    if dispatch == "task":
        return runner.submit(extend_inline, parameters={"item": item})
    return runner.submit(
        extend_item,
        parameters={
            "item": item,
            "dispatch": dispatch,
            "deployment": deployment,
            "idempotency_key": f"rh-extend-batch {flow_run.id} item {key}",
            "timeout_s": item_timeout_s,
        },
    )


def run_items(
    items: list[BatchItem],
    dispatch: Dispatch,
    max_parallel: int,
    deployment: str,
    item_timeout_s: float | None,
) -> list[ItemOutcome]:
    """Check every item, drop in-batch duplicates, run the rest at most max_parallel at once."""
    outcomes, keys = _plan(items)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=max(1, max_parallel))
    with runner:
        futures = {
            index: _submit(runner, items[index], key, dispatch, deployment, item_timeout_s)
            for index, key in keys.items()
        }
        for index, future in futures.items():
            value = future.result(raise_on_failure=False)
            if isinstance(value, ItemOutcome):
                outcomes[index] = value
            else:  # the task itself broke (not the item): still one item's outcome
                error = value if isinstance(value, BaseException) else RuntimeError(str(value))
                outcomes[index] = outcome_from_exception(items[index], error)
    return [outcomes[index] for index in range(len(items))]
