"""A batch's S3 inbox: which prefix, the scan that claims new videos, the marks once done.

The claims themselves (settling, taking over a dead run's claim) are `rh_extend.batch_items`'.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from rh_extend.batch_items import BatchItem, Defaults, Inbox, InboxScan
from rh_extend.errors import ConfigurationError
from rh_extend.flows.batch.outcomes import ItemOutcome
from rh_extend.settings import load_settings
from rh_extend.storage import s3_client


def resolve_inbox(inbox: str) -> str:
    """`default` means the archive bucket's `<prefix>/inbox/`."""
    if inbox != "default":
        return inbox
    settings = load_settings()
    if not settings.s3_bucket:
        raise ConfigurationError("RH_EXTEND_S3_BUCKET is not set: the default inbox lives there")
    prefix = settings.s3_prefix.strip("/")
    return f"s3://{settings.s3_bucket}/{prefix + '/' if prefix else ''}inbox/"


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
