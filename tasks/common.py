"""What every task needs: retry rules by error class, and the process's clients warmed once.

The clients themselves are built from settings in `rh_extend.clients`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rh_extend.clients import runninghub_client
from rh_extend.settings import Settings
from rh_extend.storage import s3_client
from runninghub import TransientError


def warm_up(settings: Settings) -> None:
    """Build this process's shared clients now (the S3 client: ≈ 0.2 s of CPU for boto3's
    service model; the TLS context) and load the contact sheet's numpy, not in every parallel
    item at once behind a lock; and learn the key's concurrency limit and open the client its
    slots are leased through, so that parallel items take turns getting ready to submit
    (rh_extend/limits.py) from the first one on."""
    s3_client(settings.s3_checksums)
    import rh_extend.observe.contact_sheet  # noqa: F401  numpy, loaded once, not by an archive

    if settings.api_key():
        runninghub_client(settings).close()
        if settings.concurrency_limit != 0:
            from rh_extend.limits import warm_slots

            warm_slots(settings)


def _raised(state: Any) -> BaseException | None:
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:
        return exc
    return None


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retries a task only when the failure could go away by itself."""
    return isinstance(_raised(state), TransientError)


def may_pass(exc: BaseException | None) -> bool:
    """A RunningHub or S3 failure that could go away by itself (5xx, 429, network)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status == 429
    return isinstance(exc, BotoCoreError | TransientError)


def retry_on_storage(task: Any, task_run: Any, state: Any) -> bool:
    return may_pass(_raised(state))
