"""`extend_batch`: many videos, one `extend_video` run each, bounded, one summary at the end.

Items come from a manifest (CSV or JSONL, local path or s3:// URI) or from an S3 inbox prefix
(see `rh_extend.batch_items`). Each valid item runs `extend_video`:

- `dispatch="subflow"` (default): as a subflow inside a task of this run, on a thread pool of
  `max_parallel` threads: one process, no worker needed; each video has its own flow run page.
- `dispatch="task"`: the same chain inline, as one task run of this run per video (its steps
  are plain calls): the leanest for big batches — a subflow and its seven task runs cost the
  client and the Prefect server ≈ 0.5 s of CPU per video, one task run ≈ 0.03 s
  (docs/benchmarks.md, P1). Reports, events and the contact sheet are the same; they belong
  to the batch's run. A transient failure reruns the item's chain (safe: it resumes what it
  finds archived or submitted) up to twice.
- `dispatch="deployment"`: as a run of the `extend-video` deployment (`run_deployment`, linked
  to this run, with an idempotency key of this batch + the item), so any worker of the pool can
  take it; this run waits for at most `max_parallel` of them at a time.

Either way each item also waits for a slot of the RunningHub key's global concurrency limit
inside `extend_video`, so several batches, events and schedules together never exceed what the
key allows.

Outcomes per item: `archived` (new result), `reused` (already archived: no RunningHub call),
`in_progress` (another run holds this request's submit right now: nothing paid here, that run
delivers it), `duplicate` (the same request appears earlier in this batch), `failed` (with its
cause). One item's failure never stops the others.

Final state: **Failed** when at least one item failed and none was archived or reused (the whole
batch achieved nothing); otherwise **Completed**, with the counts in the state message. Either
way the run leaves a table artifact with every item and its cause, and emits
`rh-extend.batch.finished` with the counts, for automations that alert on failures.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import TaskRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from rh_extend import observe
from rh_extend.batch_items import BatchItem, Defaults, Inbox, InboxScan, read_manifest
from rh_extend.errors import ConfigurationError, PipelineError, SubmissionInProgressError
from rh_extend.flows.direct import direct_run
from rh_extend.flows.extend_video import INLINE_STEPS, extend_video, run_chain, user_params
from rh_extend.prefect_internals import plain_json_parameters
from rh_extend.result import ExtendResult
from rh_extend.settings import load_settings
from rh_extend.storage import s3_client
from rh_extend.tasks.common import may_pass, retry_on_storage, warm_up
from runninghub import InputValidationError, RunningHubError, get_model

Status = Literal["archived", "reused", "in_progress", "duplicate", "failed"]
Dispatch = Literal["subflow", "task", "deployment"]

EXTEND_VIDEO_DEPLOYMENT = "extend-video/extend-video"
BATCH_FINISHED = "rh-extend.batch.finished"
MODEL_PARAMS = ("duration", "resolution", "cut_type", "negative_prompt", "seed")
# Everything else `extend_video` accepts (take, max_cost, resubmit, ...) passes through as is.
FLOW_OPTIONS = tuple(
    name
    for name in inspect.signature(extend_video.fn).parameters
    if name not in ("source", "model", "prompt", *MODEL_PARAMS)
)
ITEM_PARAMS = (*MODEL_PARAMS, *FLOW_OPTIONS)


class ItemOutcome(BaseModel):
    label: str
    source: str
    model: str | None = None
    status: Status
    request_key: str | None = None
    task_id: str | None = None
    output_uri: str | None = None
    cost: float | None = None
    error_type: str | None = None
    error_code: str | None = None
    cause: str | None = None
    flow_run_id: str | None = None
    seconds: float = 0.0


class BatchSummary(BaseModel):
    source: str
    total: int = 0
    archived: int = 0
    reused: int = 0
    in_progress: int = 0
    duplicate: int = 0
    failed: int = 0
    already_claimed: int = 0  # inbox: videos an earlier or concurrent tick took
    settling: int = 0  # inbox: videos too fresh to take yet
    items: list[ItemOutcome] = Field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.archived + self.reused

    @property
    def all_failed(self) -> bool:
        return self.failed > 0 and self.succeeded == 0

    def line(self) -> str:
        text = (
            f"{self.total} items: {self.archived} archived, {self.reused} reused, "
            f"{self.in_progress} in progress elsewhere, {self.duplicate} duplicate, "
            f"{self.failed} failed"
        )
        if self.already_claimed or self.settling:
            text += f" ({self.already_claimed} already claimed, {self.settling} settling)"
        failures = [f"{o.label}: {o.cause}" for o in self.items if o.status == "failed"]
        if failures:
            text += ". Failed: " + "; ".join(failures[:5])
            if len(failures) > 5:
                text += f"; … {len(failures) - 5} more"
        return text


class BatchFailedError(PipelineError):
    """Every item of the batch failed (none archived or reused); `.summary` has the causes."""

    code = "BATCH_FAILED"

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__(summary.line())
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.summary,))


# ------------------------------------------------------------------------- item preparation


def item_key(item: BatchItem) -> str:
    """Identifies a request before its video is read: source, model, normalized parameters."""
    spec = get_model(str(item.model))
    given = {name: item.params.get(name) for name in MODEL_PARAMS}
    normalized = spec.normalize(user_params(prompt=item.prompt, **given))
    options = {k: v for k, v in item.params.items() if k in FLOW_OPTIONS and v is not None}
    canonical = json.dumps(
        {"source": item.source, "model": spec.id, "params": normalized, "options": options},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_item(item: BatchItem) -> str:
    """The item's key, or an exception naming what's wrong, before anything is run or paid."""
    if item.problem:
        raise ValueError(item.problem)
    if not item.model:
        raise InputValidationError(
            f"{item.label}: no model (give one in the manifest, the sidecar or the batch's "
            "`model` parameter)",
            field="model",
            value=None,
            allowed="a model id",
        )
    unknown = sorted(set(item.params) - set(ITEM_PARAMS))
    if unknown:
        raise InputValidationError(
            f"{item.label}: unknown parameter(s) {unknown}; allowed {list(ITEM_PARAMS)}",
            field=unknown[0],
            value=item.params[unknown[0]],
            allowed=", ".join(ITEM_PARAMS),
        )
    return item_key(item)


def flow_parameters(item: BatchItem) -> dict[str, Any]:
    params = {k: v for k, v in item.params.items() if v is not None}
    return {"source": item.source, "model": item.model, "prompt": item.prompt, **params}


# ---------------------------------------------------------------------------- outcomes


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code else type(exc).__name__


def outcome_from_exception(item: BatchItem, exc: BaseException, **extra: Any) -> ItemOutcome:
    in_progress = isinstance(exc, SubmissionInProgressError)
    fields: dict[str, Any] = {
        "request_key": getattr(exc, "request_key", None),
        "task_id": getattr(exc, "task_id", None),
        **{name: value for name, value in extra.items() if value is not None},
    }
    return ItemOutcome(
        label=item.label,
        source=item.source,
        model=item.model,
        status="in_progress" if in_progress else "failed",
        error_type=type(exc).__name__,
        error_code=_error_code(exc),
        cause=f"{type(exc).__name__}: {exc}",
        **fields,
    )


def outcome_from_result(item: BatchItem, result: ExtendResult, **extra: Any) -> ItemOutcome:
    return ItemOutcome(
        label=item.label,
        source=item.source,
        model=item.model,
        status="reused" if result.reused_archive else "archived",
        request_key=result.request_key,
        task_id=result.task_id,
        output_uri=result.output_uri,
        cost=result.cost,
        **{"flow_run_id": result.flow_run_id, **extra},
    )


def _outcome_from_state(item: BatchItem, state: Any, run_id: str, seconds: float) -> ItemOutcome:
    """A deployment run's final state → an outcome (its result when results are persisted)."""
    try:
        value = state.result(raise_on_failure=False)
    except Exception:  # results not persisted or not reachable from here
        value = None
    if state.is_completed():
        if isinstance(value, dict):
            value = ExtendResult.model_validate(value)
        if isinstance(value, ExtendResult):
            return outcome_from_result(item, value, flow_run_id=run_id, seconds=seconds)
        return ItemOutcome(
            label=item.label,
            source=item.source,
            model=item.model,
            status="archived",
            flow_run_id=run_id,
            seconds=seconds,
            cause="result not readable here (persist results to shared storage to see it)",
        )
    if isinstance(value, BaseException):
        return outcome_from_exception(item, value, flow_run_id=run_id, seconds=seconds)
    message = str(state.message or state.name)
    in_progress = SubmissionInProgressError.__name__ in message
    return ItemOutcome(
        label=item.label,
        source=item.source,
        model=item.model,
        status="in_progress" if in_progress else "failed",
        error_type=state.name,
        error_code=state.type.value if hasattr(state.type, "value") else str(state.type),
        cause=message,
        flow_run_id=run_id,
        seconds=seconds,
    )


# ------------------------------------------------------------------------------- tasks


def _logged(outcome: ItemOutcome) -> ItemOutcome:
    cause = f" ({outcome.cause})" if outcome.cause else ""
    get_run_logger().info("%s: %s%s", outcome.label, outcome.status, cause)
    return outcome


@task(name="extend-item", task_run_name="{item.label}", cache_policy=NO_CACHE, retries=0)
def extend_item(
    item: BatchItem,
    dispatch: Dispatch = "subflow",
    deployment: str = EXTEND_VIDEO_DEPLOYMENT,
    idempotency_key: str | None = None,
    timeout_s: float | None = None,
) -> ItemOutcome:
    """One item; never raises for the item's own failure (that is its outcome)."""
    started = time.monotonic()
    if dispatch == "deployment":
        from prefect.deployments import run_deployment

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
        outcome = _outcome_from_state(item, child.state, str(child.id), seconds)
    else:
        try:
            with direct_run(item.model):  # no heartbeats: the batch run beats for this process
                result = extend_video(**flow_parameters(item))
        except Exception as exc:  # the item's failure is its outcome, not the batch's
            outcome = outcome_from_exception(item, exc, seconds=time.monotonic() - started)
        else:
            outcome = outcome_from_result(item, result, seconds=time.monotonic() - started)
    return _logged(outcome)


ITEM_RETRIES = 2


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
    with observe.run_scope(scope) as facts:
        try:
            result = run_chain(INLINE_STEPS, **parameters)
        except Exception as exc:
            if may_pass(exc) and run.run_count <= ITEM_RETRIES:
                raise
            outcome = outcome_from_exception(
                item,
                exc,
                request_key=facts.request_key,
                task_id=facts.task_id,
                flow_run_id=batch_run_id,
                seconds=time.monotonic() - started,
            )
            observe.report_failed_run(scope, run.name, parameters, exc, run_id=batch_run_id)
        else:
            outcome = outcome_from_result(item, result, seconds=time.monotonic() - started)
    return _logged(outcome)  # its report is sent in the background; the batch waits at its end


@task(name="scan-inbox", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def scan_inbox(
    inbox: str,
    defaults: Defaults,
    settle_s: float,
    reclaim_after_s: float | None,
    max_items: int | None,
) -> InboxScan:
    settings = load_settings()
    box = Inbox(inbox, s3_client(settings.s3_checksums))
    scan = box.scan(
        defaults,
        claimed_by=f"flow-run/{flow_run.id}",
        settle_s=settle_s,
        reclaim_after_s=reclaim_after_s,
        max_items=max_items,
    )
    get_run_logger().info(
        "inbox %s: took %d new video(s); %d already claimed, %d settling",
        box.uri,
        len(scan.items),
        scan.already_claimed,
        scan.settling,
    )
    return scan


@task(name="mark-inbox", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def mark_inbox(inbox: str, items: list[BatchItem], outcomes: list[ItemOutcome]) -> int:
    settings = load_settings()
    box = Inbox(inbox, s3_client(settings.s3_checksums))
    marked = 0
    for item, outcome in zip(items, outcomes, strict=True):
        if box.finish(item, outcome.model_dump(mode="json")):
            marked += 1
        else:
            get_run_logger().warning("%s: its claim was taken over; left as it is", item.label)
    return marked


# -------------------------------------------------------------------------------- flow


def resolve_inbox(inbox: str) -> str:
    """`default` means the archive bucket's `<prefix>/inbox/`."""
    if inbox != "default":
        return inbox
    settings = load_settings()
    if not settings.s3_bucket:
        raise ConfigurationError("RH_EXTEND_S3_BUCKET is not set: the default inbox lives there")
    prefix = settings.s3_prefix.strip("/")
    return f"s3://{settings.s3_bucket}/{prefix + '/' if prefix else ''}inbox/"


def _batch_run_name() -> str:
    params = flow_run.parameters
    if params.get("inbox"):
        return "extend-inbox"
    manifest = str(params.get("manifest") or "batch")
    return "extend-batch-" + manifest.rstrip("/").rsplit("/", 1)[-1]


def _run(
    items: list[BatchItem],
    dispatch: Dispatch,
    max_parallel: int,
    deployment: str,
    item_timeout_s: float | None,
) -> list[ItemOutcome]:
    """Check every item, drop in-batch duplicates, run the rest at most max_parallel at once."""
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
    batch = str(flow_run.id)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=max(1, max_parallel))
    with runner:
        futures = {
            index: (
                runner.submit(extend_inline, parameters={"item": items[index]})
                if dispatch == "task"
                else runner.submit(
                    extend_item,
                    parameters={
                        "item": items[index],
                        "dispatch": dispatch,
                        "deployment": deployment,
                        "idempotency_key": f"rh-extend-batch {batch} item {key}",
                        "timeout_s": item_timeout_s,
                    },
                )
            )
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


def summarize(source: str, outcomes: list[ItemOutcome], scan: InboxScan | None) -> BatchSummary:
    summary = BatchSummary(source=source, total=len(outcomes), items=outcomes)
    for outcome in outcomes:
        setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
    if scan is not None:
        summary.already_claimed = scan.already_claimed
        summary.settling = scan.settling
    return summary


def _report(summary: BatchSummary) -> None:
    """The batch's report and table (sent side by side with the items' last reports) and
    `rh-extend.batch.finished`; returns once all of them are with Prefect."""
    batch, description = str(flow_run.id), summary.line()
    markdown = observe.render_batch_markdown(summary.source, description, summary.items)
    rows = observe.batch_rows(summary.items)

    def send_report() -> None:
        create_markdown_artifact(markdown, key="extend-batch-report", description=description)

    def send_table() -> None:
        create_table_artifact(rows, key="extend-batch-items", description=description)

    observe.report_writes.put(("batch-report", batch), send_report)
    if summary.items:
        observe.report_writes.put(("batch-table", batch), send_table)
    emit_event(
        BATCH_FINISHED,
        resource={
            "prefect.resource.id": f"rh-extend.batch.{flow_run.id}",
            "prefect.resource.name": summary.source,
        },
        payload={
            **summary.model_dump(mode="json", exclude={"items"}),
            "failed_items": [
                {"item": o.label, "cause": o.cause} for o in summary.items if o.status == "failed"
            ],
        },
    )
    observe.report_writes.flush()


@plain_json_parameters
@flow(name="extend-batch", flow_run_name=_batch_run_name, log_prints=True)
def extend_batch(
    manifest: str | None = None,
    inbox: str | None = None,
    model: str | None = None,
    prompt: str | None = None,
    params: dict[str, Any] | None = None,
    max_parallel: int = 4,
    dispatch: Dispatch = "subflow",
    deployment: str = EXTEND_VIDEO_DEPLOYMENT,
    item_timeout_s: float | None = None,
    settle_s: float = 30.0,
    reclaim_after_s: float | None = 6 * 3600.0,
    max_items: int | None = None,
) -> State[Any]:
    """Extend every video of MANIFEST (CSV/JSONL, path or s3:// URI) or of INBOX (s3:// prefix,
    or `default` for the archive bucket's `<prefix>/inbox/`).

    `model`, `prompt` and `params` are defaults for items that don't set their own. At most
    `max_parallel` items run at once (about twice the RunningHub key's slots keeps every slot
    busy: the next item is uploaded while others generate); `dispatch` runs them as subflows
    here, as one task run each here (`task`, leanest), or as runs of the `deployment` on the
    work pool's workers. Inbox: videos younger than `settle_s` wait for the
    next tick (time for a sidecar to arrive); a claim left `claimed` for `reclaim_after_s` (its
    run died) is taken over.
    """
    if (manifest is None) == (inbox is None):
        raise ConfigurationError("give exactly one of `manifest` or `inbox`")
    logger = get_run_logger()
    defaults = Defaults(model=model, prompt=prompt, params=dict(params or {}))
    scan: InboxScan | None = None
    if manifest is not None:
        settings = load_settings()
        s3 = s3_client(settings.s3_checksums) if manifest.startswith("s3://") else None
        items = read_manifest(manifest, defaults, s3)
        source = manifest
    else:
        source = resolve_inbox(str(inbox))
        scan = scan_inbox(source, defaults, settle_s, reclaim_after_s, max_items)
        items = scan.items
    if max_items is not None:
        items = items[:max_items]
    logger.info("%d item(s) from %s, dispatch=%s, max_parallel=%d", len(items), source,
                dispatch, max_parallel)  # fmt: skip
    if dispatch != "deployment":  # the chains run in this process
        warm_up(load_settings())
    outcomes = _run(items, dispatch, max_parallel, deployment, item_timeout_s)
    if scan is not None and items:
        mark_inbox(source, items, outcomes)
    summary = summarize(source, outcomes, scan)
    _report(summary)
    logger.info("%s", summary.line())
    if summary.all_failed:
        return Failed(message=summary.line(), data=BatchFailedError(summary))
    return Completed(message=summary.line(), data=summary)
