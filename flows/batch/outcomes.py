"""What one batch item came to, and the batch's counts.

Outcomes per item: `archived` (new result), `reused` (already archived: no RunningHub call),
`in_progress` (another run holds this request's submit right now: nothing paid here, that run
delivers it), `duplicate` (the same request appears earlier in this batch), `failed` (with its
cause). Items are checked (`check_item`) before anything is run or paid.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from rh_extend.batch_items import BatchItem, InboxScan
from rh_extend.errors import PipelineError, SubmissionInProgressError
from rh_extend.request import ExtendRequest
from rh_extend.result import ExtendResult
from runninghub import InputValidationError

Status = Literal["archived", "reused", "in_progress", "duplicate", "failed"]

# What an item's `params` may hold: the request's fields beyond source, model and prompt, and
# `resubmit` (pay again although an earlier submit is on record).
ITEM_PARAMS = (
    *(name for name in ExtendRequest.model_fields if name not in ("source", "model", "prompt")),
    "resubmit",
)


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


def summarize(source: str, outcomes: list[ItemOutcome], scan: InboxScan | None) -> BatchSummary:
    summary = BatchSummary(source=source, total=len(outcomes), items=outcomes)
    for outcome in outcomes:
        setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
    if scan is not None:
        summary.already_claimed = scan.already_claimed
        summary.settling = scan.settling
    return summary


# ------------------------------------------------------------------------- item preparation


def item_request(item: BatchItem) -> ExtendRequest:
    """The item's typed request, or InputValidationError naming what's wrong."""
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
    fields = {k: v for k, v in item.params.items() if k != "resubmit"}
    return ExtendRequest.checked(source=item.source, model=item.model, prompt=item.prompt, **fields)


def item_resubmit(item: BatchItem) -> bool:
    return bool(item.params.get("resubmit"))


def item_key(item: BatchItem) -> str:
    """Identifies a request before its video is read: source, model, normalized parameters."""
    request = item_request(item)
    options = {"take": request.take, "max_cost": request.max_cost, "resubmit": item_resubmit(item)}
    canonical = json.dumps(
        {
            "source": request.source,
            "model": request.model,
            "params": request.params(),
            "options": {k: v for k, v in options.items() if v not in (None, False)},
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_item(item: BatchItem) -> str:
    """The item's key, or an exception naming what's wrong, before anything is run or paid."""
    return item_key(item)


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


def outcome_from_state(item: BatchItem, state: Any, run_id: str, seconds: float) -> ItemOutcome:
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
