"""Lookup: what an earlier run of the same request left behind, before anything is paid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prefect import task
from prefect.cache_policies import NO_CACHE

from rh_extend.clients import archive
from rh_extend.result import ExtendResult
from rh_extend.settings import load_settings
from rh_extend.submissions import SubmissionBook
from rh_extend.tasks.archive import MANIFEST, archived_result
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
    store = archive(load_settings())
    book = SubmissionBook(store)
    # both records at once: one S3 round trip on the way to the submit, not two
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rh-extend-lookup") as pool:
        record = pool.submit(book.read, request_key)
        manifest = store.read_json(request_key, MANIFEST)
        found = archived_result(store, request_key, manifest)
        return found or recorded_submission(book, request_key, record.result(), resubmit)
