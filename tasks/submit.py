"""Submit: at most one paid submit per request key.

No Prefect retries here, ever: a retried submit is a second bill. The client already retries the
cases where RunningHub surely created nothing; everything else is decided by the submission record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from rh_extend import stage_events
from rh_extend.clients import archive, runninghub_client
from rh_extend.errors import (
    CancelledRequestError,
    SubmissionInProgressError,
    UnresolvedSubmissionError,
)
from rh_extend.settings import load_settings
from rh_extend.submissions import SubmissionBook
from runninghub import SubmitOutcomeUnknownError, TaskResponse, get_model


@dataclass(frozen=True)
class Submitted:
    task_id: str
    resumed: bool
    response: TaskResponse | None = None


def _book() -> SubmissionBook:
    return SubmissionBook(archive(load_settings()))


def _resume_or_stop(book: SubmissionBook, request_key: str, record: dict[str, object]) -> Submitted:
    task_id = record.get("task_id")
    if record.get("state") == "cancelled":
        raise CancelledRequestError(
            request_key, str(task_id), str(record.get("cancelled_at")), book.uri(request_key)
        )
    if task_id:
        return Submitted(task_id=str(task_id), resumed=True)
    raise UnresolvedSubmissionError(request_key, book.uri(request_key), str(record.get("since")))


def _this_flow_run() -> str | None:
    run_id = flow_run.id  # in a task run: the flow run it belongs to (a batch's, for inline items)
    return str(run_id) if run_id else None


def recorded_submission(
    book: SubmissionBook, request_key: str, record: dict[str, Any] | None, resubmit: bool = False
) -> Submitted | None:
    """From the request's submission RECORD (as read): an earlier run's taskId to resume, None to
    submit, or a stop when its outcome is unknown."""
    if record is None or resubmit:
        return None
    found = _resume_or_stop(book, request_key, record)
    get_run_logger().info(
        "[%s task %s] resuming the earlier submit", request_key[:12], found.task_id
    )
    return found


@task(name="submit", cache_policy=NO_CACHE, retries=0)
def submit_request(
    request_key: str,
    model_id: str,
    video_url: str,
    params: Mapping[str, object],
    resubmit: bool = False,
    origin: Mapping[str, Any] | None = None,
) -> Submitted:
    """ORIGIN (the request, the input's facts: `flows/manifest.py`) is kept in the submission
    record, so that a collector can archive the result should this run die."""
    logger = get_run_logger()
    book = _book()
    owner = _this_flow_run()
    if not book.claim(request_key, model_id, overwrite=resubmit, flow_run_id=owner, origin=origin):
        record = book.read(request_key) or {}
        if record.get("task_id"):
            return _resume_or_stop(book, request_key, record)
        raise SubmissionInProgressError(request_key, book.uri(request_key))
    stage_events.emit("submit", "start", message=model_id)
    body = get_model(model_id).build_body(video_url, params)
    try:
        with runninghub_client(load_settings()) as client:
            response = client.submit(model_id, body)
    except SubmitOutcomeUnknownError:
        logger.error(
            "[%s] submit sent but its answer was lost; the intent stays recorded at %s",
            request_key[:12],
            book.uri(request_key),
        )
        raise
    except Exception:
        book.release(request_key)
        raise
    task_id = str(response.task_id)
    book.record_task(
        request_key, model_id, task_id, str(response.status), flow_run_id=owner, origin=origin
    )
    logger.info(
        "[%s task %s] submitted to %s, status %s",
        request_key[:12],
        task_id,
        model_id,
        response.status,
    )
    stage_events.emit("submit", "done", message=task_id, data={"task_id": task_id})
    return Submitted(task_id=task_id, resumed=False, response=response)
