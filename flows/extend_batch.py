"""`extend_batch`: many videos, one `extend_video` run each, bounded, one summary at the end.

Items come from a manifest (CSV or JSONL, local path or s3:// URI) or from an S3 inbox prefix
(see `rh_extend.batch_items`). Each valid item runs `extend_video` as a subflow (default), inline
as one task run (`dispatch="task"`, the leanest for big batches) or as a run of the
`extend-video` deployment on the work pool's workers (`rh_extend.flows.batch.dispatch`). Either
way each item also waits for a slot of the RunningHub key's global concurrency limit inside
`extend_video`, so several batches, events and schedules together never exceed what the key
allows.

Each item ends `archived`, `reused`, `in_progress`, `duplicate` or `failed` with its cause
(`rh_extend.flows.batch.outcomes`); one item's failure never stops the others.

Final state: **Failed** when at least one item failed and none was archived or reused (the whole
batch achieved nothing); otherwise **Completed**, with the counts in the state message. Either
way the run leaves a table artifact with every item and its cause, and emits
`rh-extend.batch.finished` with the counts, for automations that alert on failures
(`rh_extend.flows.batch.report`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from rh_extend.batch_items import BatchItem, Defaults, InboxScan, read_manifest
from rh_extend.errors import ConfigurationError
from rh_extend.flows.batch.dispatch import EXTEND_VIDEO_DEPLOYMENT, Dispatch, run_items
from rh_extend.flows.batch.inbox import mark_inbox, resolve_inbox, scan_inbox
from rh_extend.flows.batch.outcomes import (
    BatchFailedError,
    BatchSummary,
    ItemOutcome,
    check_item,
    item_key,
    summarize,
)
from rh_extend.flows.batch.report import BATCH_FINISHED, report
from rh_extend.held_tasks import cancel_paid_work
from rh_extend.prefect_internals import plain_json_parameters
from rh_extend.settings import load_settings
from rh_extend.storage import s3_client
from rh_extend.tasks.common import warm_up

# Re-exported: callers import them from here, and results pickled before the split name them so.
__all__ = [
    "BATCH_FINISHED",
    "EXTEND_VIDEO_DEPLOYMENT",
    "BatchFailedError",
    "BatchSummary",
    "Dispatch",
    "ItemOutcome",
    "check_item",
    "extend_batch",
    "item_key",
]


def _batch_run_name() -> str:
    params = flow_run.parameters
    if params.get("inbox"):
        return "extend-inbox"
    manifest = str(params.get("manifest") or "batch")
    return "extend-batch-" + manifest.rstrip("/").rsplit("/", 1)[-1]


def _read_manifest(manifest: str, defaults: Defaults) -> list[BatchItem]:
    settings = load_settings()
    s3 = s3_client(settings.s3_checksums) if manifest.startswith("s3://") else None
    return read_manifest(manifest, defaults, s3)


@plain_json_parameters
@flow(
    name="extend-batch",
    flow_run_name=_batch_run_name,
    log_prints=True,
    on_cancellation=[cancel_paid_work],
)
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
        items = _read_manifest(manifest, defaults)
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
    outcomes = run_items(items, dispatch, max_parallel, deployment, item_timeout_s)
    if scan is not None and items:
        mark_inbox(source, items, outcomes)
    summary = summarize(source, outcomes, scan)
    report(summary)
    logger.info("%s", summary.line())
    if summary.all_failed:
        return Failed(message=summary.line(), data=BatchFailedError(summary))
    return Completed(message=summary.line(), data=summary)
