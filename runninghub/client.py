"""A synchronous RunningHub client: upload, submit, poll, download, and the account calls.

Retries live here, per call kind, because only the client knows what is safe to repeat:
queries, uploads and downloads are repeated on transient trouble; a submit (which may be
billed) is repeated only when RunningHub surely created nothing. When a submit's answer is
lost, the client says so (SubmitOutcomeUnknownError) instead of guessing.

The machinery sits in private modules: _transport (the httpx client, the key, URL rules),
_errors (what each failure means), _retry (policy and loops), _download and _upload.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from . import _download

# _ConnectFailed and _NoSuchPath were defined here before; exceptions pickled into Prefect states
# by then name them under runninghub.client, so the names stay importable from here.
from ._errors import (
    _ConnectFailed,  # noqa: F401
    _NoSuchPath,  # noqa: F401
    data_object,
    dump_excerpt,
    endpoint_missing,
    json_answer,
    parse,
    poll_can_continue,
    request_failed,
    safe_to_resubmit,
    submit_answer,
    submit_failed,
    task_failed,
)
from ._retry import MAX_RETRY_AFTER, RetryPolicy, SubmitBudget, retrying, run, with_retries
from ._transport import Files, Transport
from ._upload import multipart, upload_size
from .catalog import CATALOG, ModelSpec
from .exceptions import (
    InputValidationError,
    InvalidRequestError,
    PollTimeoutError,
    ProtocolError,
    TaskAlreadyEndedError,
    TaskNotFoundError,
    TransientError,
)
from .models import (
    AccountStatus,
    CancelOutcome,
    DownloadResult,
    Failed,
    PricePreview,
    QueueStatus,
    Succeeded,
    TaskResponse,
    UploadResult,
)

__all__ = ["DEFAULT_BASE_URL", "RetryPolicy", "RunningHubClient"]

DEFAULT_BASE_URL = "https://www.runninghub.ai"

logger = logging.getLogger("runninghub")

_UPLOAD_PATH = "/openapi/v2/media/upload/binary"
_QUERY_PATH = "/openapi/v2/query"
_QUEUE_PATH = "/openapi/v2/queue/status"
_PRICE_PREFIX = "/openapi/v2/price-preview/"
_V2_PREFIX = "/openapi/v2/"
_ACCOUNT_PATH = "/uc/openapi/accountStatus"
_CANCEL_PATH = "/task/openapi/cancel"

M = TypeVar("M", bound=BaseModel)


class RunningHubClient:
    """Talks to RunningHub's OpenAPI. Use as a context manager, or call close()."""

    def __init__(
        self,
        api_key: str | SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        *,
        allow_http: bool = False,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        catalog: Mapping[str, ModelSpec] = CATALOG,
        path_overrides: Mapping[str, str] | None = None,
        user_agent: str = "rh-extend",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = Transport(
            api_key,
            base_url,
            allow_http=allow_http,
            timeout=timeout,
            httpx_transport=transport,
            user_agent=user_agent,
        )
        self._retry = retry
        self._catalog = catalog
        self._paths = self._check_overrides(path_overrides or {})
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RunningHubClient(base_url={self.base_url!r}, api_key='***')"

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def __enter__(self) -> RunningHubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # --- public calls ----------------------------------------------------------------------

    def upload(
        self, path: Path, *, on_progress: Callable[[int, int], None] | None = None
    ) -> UploadResult:
        """Upload a local file (streamed) and return the link to put into `videoUrl`."""
        path = Path(path)
        size = upload_size(path)

        def attempt(number: int) -> UploadResult:
            with path.open("rb") as file:
                files = multipart(path, file, size, on_progress)
                body = self._request_json(
                    "POST", _UPLOAD_PATH, "upload", files=files, attempt=number
                )
            return self._parse(UploadResult, self._data(body, "upload"), "upload")

        result = with_retries(self._retry, self._sleep, "upload", attempt)
        logger.info("uploaded %s (%d bytes) as %s", path.name, size, result.file_name)
        return result

    def submit(self, model_id: str, body: Mapping[str, object]) -> TaskResponse:
        """Create a task. Never repeated when RunningHub may have created it already."""
        spec = self._model(model_id)
        if not isinstance(body.get("videoUrl"), str) or not str(body.get("videoUrl")).strip():
            raise InputValidationError(
                f"the submit body for {spec.id} has no videoUrl: upload the input first",
                field="videoUrl",
                value=body.get("videoUrl"),
                allowed="an http(s) URL",
            )
        paths = self._submit_paths(spec)
        for index, path in enumerate(paths):
            try:
                return self._submit_with_retries(spec, path, body)
            except InvalidRequestError as error:
                # a missing endpoint created nothing: the alternate spelling of the path is
                # safe to try
                if not endpoint_missing(error) or index == len(paths) - 1:
                    raise
                logger.warning("%s: %s not found, trying %s", spec.id, path, paths[index + 1])
        raise AssertionError("unreachable")

    def query(self, task_id: str) -> TaskResponse:
        """One look at a task (retried on transient trouble). Read `.state` to interpret it."""
        task_id = self._check_task_id(task_id)
        return with_retries(
            self._retry, self._sleep, "query", lambda number: self._query_once(task_id, number)
        )

    def wait(
        self,
        task_id: str,
        *,
        interval: float = 5.0,
        max_interval: float = 30.0,
        timeout: float = 1800.0,
        max_consecutive_errors: int = 5,
        on_update: Callable[[TaskResponse], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> TaskResponse:
        """Poll until the task succeeds (returned), fails (TaskFailedError) or times out.

        Up to `max_consecutive_errors` transient errors in a row are tolerated; the next one
        is raised. Unreadable answers (an HTML page from a proxy) count as transient here: a
        query is harmless to repeat, and giving up would orphan a paid task. An unknown
        status is raised at once. Looks start `interval` apart (start to start: the query's own
        time is not added to it), which grows ×1.5 up to `max_interval`; the last look happens
        at the deadline, then PollTimeoutError.
        """
        task_id = self._check_task_id(task_id)
        deadline = clock() + timeout
        delay = interval
        errors = 0
        last_status = "unknown"
        while True:
            pause, looked_at = delay, clock()
            try:
                response = self._query_once(task_id, errors + 1)
            except (TransientError, ProtocolError) as error:
                errors += 1
                if not poll_can_continue(error) or errors > max_consecutive_errors:
                    raise
                logger.warning("query of task %s failed (%d in a row): %s", task_id, errors, error)
                if isinstance(error, TransientError) and error.retry_after is not None:
                    pause = max(pause, min(error.retry_after, MAX_RETRY_AFTER))
            else:
                errors = 0
                if on_update is not None:
                    on_update(response)
                state = response.state
                if isinstance(state, Succeeded):
                    logger.info("task %s succeeded with %d output(s)", task_id, len(state.outputs))
                    return response
                if isinstance(state, Failed):
                    logger.warning("task %s failed (code %s)", task_id, state.code)
                    raise task_failed(task_id, response, state, self._transport.scrub)
                last_status = response.status.value if response.status else "unknown"
                logger.debug("task %s is %s", task_id, last_status)
            remaining = deadline - clock()
            if remaining <= 0:
                raise PollTimeoutError(
                    f"task {task_id} did not finish within {timeout:.0f} s of polling "
                    f"(last status {last_status}); it may still finish and be billed",
                    task_id=task_id,
                    last_status=last_status,
                    hint="Poll it again later with its taskId instead of resubmitting",
                )
            # jitter in proportion to the pace (≤ 10 % of the pause), so short intervals stay short
            spread = min(self._retry.jitter, pause * 0.1)
            jitter = random.uniform(0, spread) if spread > 0 else 0.0
            sleep(max(0.0, min(looked_at + pause + jitter - clock(), remaining)))
            delay = min(delay * 1.5, max_interval)

    def account_status(self) -> AccountStatus:
        """Coins, money and running tasks of the key (legacy call: key in the body)."""
        body = self._call_json(
            "POST", _ACCOUNT_PATH, "account status", json={"apikey": self._transport.api_key()}
        )
        return self._parse(AccountStatus, self._data(body, "account status"), "account status")

    def queue_status(self) -> QueueStatus:
        """The key's concurrency limit and current load."""
        body = self._call_json("GET", _QUEUE_PATH, "queue status")
        return self._parse(QueueStatus, self._data(body, "queue status"), "queue status")

    def price_preview(self, model_id: str, body: Mapping[str, object]) -> PricePreview:
        """RunningHub's price estimate for a submit body (not a billing authority)."""
        spec = self._model(model_id)
        path = self._submit_paths(spec)[0]
        if not path.startswith(_V2_PREFIX):
            raise InputValidationError(
                f"no price preview for {spec.id}: its path {path!r} is not a v2 endpoint",
                field="model",
                value=spec.id,
                allowed=f"paths under {_V2_PREFIX}",
            )
        preview_path = _PRICE_PREFIX + path[len(_V2_PREFIX) :]
        answer = self._call_json("POST", preview_path, "price preview", json=dict(body))
        return self._parse(PricePreview, answer, "price preview")

    def cancel(self, task_id: str) -> CancelOutcome:
        """Ask RunningHub to cancel a task (no refund): `cancelled`, or `not_found` (807) /
        `already_ended` (817), both of which leave nothing to stop."""
        task_id = self._check_task_id(task_id)
        try:
            self._call_json(
                "POST",
                _CANCEL_PATH,
                f"cancel of task {task_id}",
                json={"apiKey": self._transport.api_key(), "taskId": task_id},
                retry_label="cancel",
            )
        except TaskNotFoundError:
            return "not_found"
        except TaskAlreadyEndedError:
            return "already_ended"
        logger.info("cancel requested for task %s", task_id)
        return "cancelled"

    def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> DownloadResult:
        """Stream `url` to `dest` (via `dest.part`), resuming with Range after a cut."""
        return _download.download(
            self._transport,
            url,
            dest,
            policy=self._retry,
            sleep=self._sleep,
            max_bytes=max_bytes,
            on_progress=on_progress,
        )

    # --- submit ----------------------------------------------------------------------------

    def _submit_with_retries(
        self, spec: ModelSpec, path: str, body: Mapping[str, object]
    ) -> TaskResponse:
        budget = SubmitBudget(self._retry, self._sleep)
        attempts = retrying(
            f"submit to {spec.id}",
            retry=safe_to_resubmit,
            stop=budget.stop,
            wait=budget.wait,
            sleep=budget.sleep,
        )
        task = run(attempts, lambda number: self._submit_once(spec, path, body, number))
        logger.info(
            "submitted to %s: taskId=%s status=%s",
            spec.id,
            task.task_id,
            task.status.value if task.status else None,
        )
        return task

    def _submit_once(
        self, spec: ModelSpec, path: str, body: Mapping[str, object], attempt: int
    ) -> TaskResponse:
        what = f"submit to {spec.id}"
        scrub = self._transport.scrub
        try:
            response = self._transport.send("POST", path, what, attempt, json=dict(body))
        except httpx.TransportError as e:
            raise submit_failed(e, spec.id, what, scrub) from e
        return submit_answer(response, spec.id, what, scrub)

    # --- query -----------------------------------------------------------------------------

    def _query_once(self, task_id: str, attempt: int) -> TaskResponse:
        what = f"query of task {task_id}"
        answer = self._request_json(
            "POST", _QUERY_PATH, what, json={"taskId": task_id}, task_answer=True, attempt=attempt
        )
        response = self._parse(TaskResponse, answer, what)
        if response.status is None and response.error_code is None:
            raise ProtocolError(
                f"RunningHub answered the {what} without a status or an error",
                excerpt=dump_excerpt(answer, self._transport.scrub),
            )
        return response

    # --- idempotent calls ------------------------------------------------------------------

    def _call_json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Mapping[str, object] | None = None,
        retry_label: str | None = None,
    ) -> dict[str, Any]:
        """An idempotent JSON call, repeated on transient trouble."""
        return with_retries(
            self._retry,
            self._sleep,
            retry_label or what,
            lambda number: self._request_json(method, path, what, json=json, attempt=number),
        )

    def _request_json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Mapping[str, object] | None = None,
        files: Files | None = None,
        task_answer: bool = False,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """One idempotent call: the JSON answer, or the RunningHubError it stands for."""
        scrub = self._transport.scrub
        try:
            response = self._transport.send(method, path, what, attempt, json=json, files=files)
        except httpx.TransportError as e:
            raise request_failed(e, what, scrub) from e
        return json_answer(response, what, scrub, task_answer=task_answer)

    def _parse(self, model: type[M], data: object, what: str) -> M:
        return parse(model, data, what, self._transport.scrub)

    def _data(self, answer: Mapping[str, Any], what: str) -> dict[str, Any]:
        return data_object(answer, what, self._transport.scrub)

    # --- small checks ----------------------------------------------------------------------

    def _model(self, model_id: str) -> ModelSpec:
        spec = self._catalog.get(model_id)
        if spec is None:
            known = ", ".join(self._catalog)
            raise InputValidationError(
                f"unknown model {model_id!r}: allowed {known}",
                field="model",
                value=model_id,
                allowed=known,
            )
        return spec

    def _submit_paths(self, spec: ModelSpec) -> tuple[str, ...]:
        override = self._paths.get(spec.id)
        return (override,) if override else (spec.path, *spec.alternate_paths)

    def _check_overrides(self, overrides: Mapping[str, str]) -> dict[str, str]:
        for model_id, path in overrides.items():
            self._model(model_id)
            if not isinstance(path, str) or not path.startswith("/"):
                raise InputValidationError(
                    f"the path override for {model_id} must start with '/': {path!r}",
                    field="path_overrides",
                    value=path,
                    allowed="a path such as /openapi/v2/alibaba/wan-2.7/video-extend",
                )
        return dict(overrides)

    @staticmethod
    def _check_task_id(task_id: str) -> str:
        text = str(task_id).strip() if task_id is not None else ""
        if not text:
            raise InputValidationError(
                "the task id is empty", field="task_id", value=task_id, allowed="a task id"
            )
        return text
