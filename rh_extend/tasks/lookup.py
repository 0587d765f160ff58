"""Lookup: what an earlier run of the same request left behind, before anything is paid."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rh_extend.result import ExtendResult
from rh_extend.tasks.archive import archived_result
from rh_extend.tasks.common import retry_on_storage
from rh_extend.tasks.submit import Submitted, recorded_submission


@task(
    name="lookup",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_storage,
)
def look_up(request_key: str, resubmit: bool = False) -> ExtendResult | Submitted | None:
    """The archived result (nothing left to do), a taskId to resume, or None: submit.

    Stops with UnresolvedSubmissionError when an earlier submit's outcome is unknown.
    """
    return archived_result(request_key) or recorded_submission(request_key, resubmit)
