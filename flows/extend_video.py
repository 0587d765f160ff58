"""`extend_video`: one source video → one extended video archived in S3."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlparse

from prefect import flow
from prefect.runtime import flow_run

from rh_extend import observe, stage_events
from rh_extend.credentials import check_blocks
from rh_extend.errors import ConfigurationError
from rh_extend.flows.direct import untagged_task_runs
from rh_extend.flows.manifest import build_manifest, origin_of
from rh_extend.held_tasks import cancel_paid_work, hold, report_crash
from rh_extend.limits import runninghub_slot
from rh_extend.prefect_internals import plain_json_parameters
from rh_extend.request import ExtendRequest
from rh_extend.request_keys import request_key
from rh_extend.result import ExtendResult
from rh_extend.settings import Settings, load_settings
from rh_extend.tasks import (
    Downloaded,
    Finished,
    StagedSource,
    Submitted,
    archive_run,
    download_output,
    look_up,
    stage_source,
    submit_request,
    upload_and_price,
    wait_for_task,
)
from rh_extend.tasks.stage import remove_staged_copy
from runninghub import Succeeded, get_model


class Steps(NamedTuple):
    """The chain's steps: Prefect tasks (a task run each, with their retries) or, inline, their
    plain functions inside one task run of a batch (`rh_extend.flows.extend_batch`)."""

    stage: Callable[..., StagedSource]
    look_up: Callable[..., ExtendResult | Submitted | None]
    upload: Callable[..., tuple[str, dict[str, Any] | None]]
    submit: Callable[..., Submitted]
    wait: Callable[..., Finished]
    download: Callable[..., Downloaded]
    archive: Callable[..., ExtendResult]


TASK_STEPS = Steps(
    stage_source,
    look_up,
    upload_and_price,
    submit_request,
    wait_for_task,
    download_output,
    archive_run,
)
INLINE_STEPS = Steps(
    stage_source.fn,
    look_up.fn,
    upload_and_price.fn,
    submit_request.fn,
    wait_for_task.fn,
    download_output.fn,
    archive_run.fn,
)


def check_settings(settings: Settings) -> None:
    # a named credentials block that is missing: found before any paid call
    check_blocks(settings.runninghub_key_block, settings.aws_credentials_block)
    if not settings.api_key():
        raise ConfigurationError(
            "RUNNINGHUB_API_KEY is not set: put your RunningHub API key in the environment or .env"
        )
    if not settings.s3_bucket:
        raise ConfigurationError("RH_EXTEND_S3_BUCKET is not set: name the archive bucket")
    if (
        urlparse(settings.runninghub_base_url).scheme != "https"
        and not settings.runninghub_allow_http
    ):
        raise ConfigurationError(
            f"RUNNINGHUB_BASE_URL={settings.runninghub_base_url!r} is not https; "
            "set RUNNINGHUB_ALLOW_HTTP=1 only for a local server"
        )


def _source_stem(source: str) -> str:
    return PurePosixPath(urlparse(source).path or source).stem or "video"


def _run_name() -> str:
    request = ExtendRequest.model_validate(flow_run.parameters["request"])
    return f"extend-{_source_stem(request.source)}-{request.model}"


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        timings[stage] = round(time.monotonic() - start, 3)


def _with_run_id(result: ExtendResult) -> ExtendResult:
    return result.model_copy(update={"flow_run_id": str(flow_run.id)})


def _finished_at_submit(submitted: Submitted) -> Finished | None:
    """A fast task can already be done in the submit answer: then there is nothing to poll."""
    response = submitted.response
    if response is not None and isinstance(response.state, Succeeded):
        return Finished(response=response)
    return None


@plain_json_parameters
@flow(
    name="extend-video",
    flow_run_name=_run_name,
    log_prints=True,
    on_running=[observe.tag_run],
    on_failure=[observe.report_failure],
    on_completion=[observe.finished],
    on_cancellation=[cancel_paid_work],
    on_crashed=[report_crash],
)
def extend_video(request: ExtendRequest, resubmit: bool = False) -> ExtendResult:
    """Extend the request's source (local path, https URL or s3:// URI) with its model and
    archive the result.

    The request's `take` labels a deliberate new (paid) attempt at the same request, its
    `max_cost` refuses to submit when RunningHub's price preview is higher; `resubmit` pays
    again although an earlier submit of this request is on record.
    """
    with untagged_task_runs(request.model):
        return run_chain(TASK_STEPS, request, resubmit)


def run_chain(steps: Steps, request: ExtendRequest, resubmit: bool = False) -> ExtendResult:
    """The chain itself, inside a Prefect run: `extend_video`'s body, or a batch item's."""
    settings = load_settings()
    model, spec, params = request.model, get_model(request.model), request.params()
    check_settings(settings)
    budget = request.max_cost if request.max_cost is not None else settings.max_cost
    timings: dict[str, float] = {}
    with runninghub_slot(settings) as slot:  # a turn to get ready now, the slot itself later
        with _timed(timings, "stage"):
            staged = steps.stage(request.source, model)
        expected_s = staged.info.duration_s + spec.added_seconds(staged.info.duration_s, params)
        origin = origin_of(request, spec, params, staged, expected_s)
        key = request_key(staged.sha256, model, params, request.take)
        stage_events.emit("stage", "info", data={"request_key": key})
        observe.track_run(key, model, timings)
        slot.reserve()  # acquired while the lookup and the upload run
        earlier = steps.look_up(key, resubmit)
        if isinstance(earlier, ExtendResult):
            remove_staged_copy(staged)  # nothing left to archive: the copy has no further use
            return _with_run_id(earlier)
        submitted = earlier
        price = None
        if submitted is None:
            with _timed(timings, "upload"):
                video_url, price = steps.upload(staged, key, model, params, budget)
        slot.take()
        if submitted is None:
            with _timed(timings, "submit"):
                submitted = steps.submit(key, model, video_url, params, resubmit, origin)
        slot.submitted()
        hold(key, submitted.task_id)  # a cancel of this run now cancels the task too
        stage_events.emit("submit", "info", data={"task_id": submitted.task_id})
        observe.submitted(key, model, submitted, price, timings)
        with _timed(timings, "poll"):
            finished = _finished_at_submit(submitted) or steps.wait(
                key, submitted.task_id, spec.typical_seconds
            )
    slot.let_submits_go_first()
    with _timed(timings, "download"):
        downloaded = steps.download(key, submitted.task_id, finished.response)
    manifest = build_manifest(key, origin, finished, downloaded, timings)
    manifest["price_preview"] = price
    observe.task_succeeded(manifest)
    return _with_run_id(steps.archive(key, staged, downloaded, manifest))
