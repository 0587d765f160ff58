"""A synchronous RunningHub client: upload, submit, poll, download, and the account calls.

Retries live here, per call kind, because only the client knows what is safe to repeat:
queries, uploads and downloads are repeated on transient trouble; a submit (which may be
billed) is repeated only when RunningHub surely created nothing. When a submit's answer is
lost, the client says so (SubmitOutcomeUnknownError) instead of guessing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import mimetypes
import os
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception

from .catalog import CATALOG, ModelSpec
from .exceptions import (
    _RESUBMIT_HINT,
    AuthenticationError,
    ConcurrencyLimitError,
    InputValidationError,
    InvalidRequestError,
    LinkExpiredError,
    PollTimeoutError,
    ProtocolError,
    RateLimitedError,
    RunningHubError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    TaskNotFoundError,
    TransientError,
    error_for_code,
)
from .models import (
    AccountStatus,
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

_EXCERPT = 200
_MAX_RETRY_AFTER = 600.0  # a broken Retry-After header must not park us for hours
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) costs ~30 ms of CPU,
    and every pipeline task makes its own client."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client retries what is safe to retry. Delays are in seconds.

    `attempts` counts every try, the first included. Delays double from `initial` up to
    `maximum`, plus up to `jitter`; a server's Retry-After replaces the computed delay.
    """

    attempts: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0
    concurrency_wait: float = 600.0  # how long a submit may wait for a free slot on 1520/421


def _backoff(policy: RetryPolicy, attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): the server's hint, else exponential."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), _MAX_RETRY_AFTER)
    delay = min(policy.initial * 2.0 ** max(attempt - 1, 0), policy.maximum)
    return delay + random.uniform(0, policy.jitter) if policy.jitter > 0 else delay


class _Secret:
    """Holds the API key so that no repr, str or vars() dump can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class _ConnectFailed(TransientError):
    """No connection was made, so nothing was sent: safe to retry even a submit."""


class _NoSuchPath(InvalidRequestError):
    """HTTP 404/405 or code 1001: the endpoint does not exist, so nothing was created."""


class _ProgressReader:
    """A file wrapper that reports upload progress as httpx reads it chunk by chunk."""

    def __init__(
        self, file: BinaryIO, total: int, on_progress: Callable[[int, int], None] | None
    ) -> None:
        self._file = file
        self._total = total
        self._sent = 0
        self._on_progress = on_progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._sent += len(chunk)
        if chunk and self._on_progress is not None:
            self._on_progress(self._sent, self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        self._sent = position  # httpx rewinds before each (re)send
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        # httpx sizes the multipart body with fstat, so it can send a Content-Length
        return self._file.fileno()


class _Transfer:
    """The state of one download across resumes: file, hash, byte counts."""

    def __init__(self, file: BinaryIO, attempts: int) -> None:
        self.file = file
        self.hasher = hashlib.sha256()
        self.written = 0
        self.total: int | None = None
        self.resumable = True
        self.resumes = 0
        self._attempts = max(1, attempts)
        self._written_at_last_failure = 0
        self._observed = 0
        self.stalls = 0  # failures in a row that brought no new bytes

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        self.written = 0
        self.total = None

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.hasher.update(chunk)
        self.written += len(chunk)

    def observe(self, state: RetryCallState) -> int:
        """Count a failed attempt once (tenacity asks `stop` and `wait` about each one)."""
        if state.attempt_number != self._observed:
            self._observed = state.attempt_number
            # a cut that still brought bytes is progress: only failures without progress count
            self.stalls = 0 if self.written > self._written_at_last_failure else self.stalls
            self.stalls += 1
            self._written_at_last_failure = self.written
        return self.stalls

    def stop(self, state: RetryCallState) -> bool:
        # the hard cap stops a server that trickles one byte per connection from looping forever
        stalls = self.observe(state)
        return stalls >= self._attempts or state.attempt_number >= 10 * self._attempts


class _SubmitBudget:
    """Retry accounting for a submit: few tries for 429/connect, a time budget for 1520/421."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self._policy = policy
        self._sleep = sleep
        self._started = time.monotonic()
        self._slept = 0.0
        self._failures = 0

    def _waited(self) -> float:
        # what we slept counts too, so an injected fake sleep still ends the wait
        return max(time.monotonic() - self._started, self._slept)

    def stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ConcurrencyLimitError):
            return self._waited() >= self._policy.concurrency_wait
        self._failures += 1
        return self._failures >= max(1, self._policy.attempts)

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        delay = _backoff(self._policy, state.attempt_number, retry_after)
        if isinstance(error, ConcurrencyLimitError):
            delay = min(delay, max(self._policy.concurrency_wait - self._waited(), 0.0))
        return delay

    def sleep(self, seconds: float) -> None:
        self._slept += seconds
        self._sleep(seconds)


def _poll_can_continue(error: RunningHubError) -> bool:
    # ProtocolErrors with an HTTP status are unreadable pages; without one, an unknown status
    return isinstance(error, TransientError) or (
        isinstance(error, ProtocolError) and error.status_code is not None
    )


def _retryable_submit_error(error: BaseException) -> bool:
    return isinstance(error, _ConnectFailed | RateLimitedError | ConcurrencyLimitError)


def _blank(value: object) -> bool:
    """True for the values RunningHub uses to mean "no error": None, "", "0", 0."""
    return value is None or str(value).strip() in ("", "0")


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content) if response.content.strip() else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _check_base_url(base_url: str, allow_http: bool) -> str:
    parts = urlsplit(base_url.strip() if isinstance(base_url, str) else "")
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.netloc or parts.query or parts.fragment:
        wanted = "an http(s) URL" if allow_http else "an https URL (http only with allow_http)"
        raise InputValidationError(
            f"RUNNINGHUB_BASE_URL={base_url!r} is not {wanted}",
            field="RUNNINGHUB_BASE_URL",
            value=base_url,
            allowed=wanted,
        )
    return base_url.strip().rstrip("/")


def _reveal(api_key: str | SecretStr) -> str:
    value = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    if not isinstance(value, str) or not value.strip():
        raise InputValidationError(
            "the RunningHub API key is empty: set RUNNINGHUB_API_KEY",
            field="RUNNINGHUB_API_KEY",
            value=None,
            allowed="a non-empty API key",
        )
    return value.strip()


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
        self._key = _Secret(_reveal(api_key))
        self._base_url = _check_base_url(base_url, allow_http)
        self._allow_http = allow_http
        self._retry = retry
        self._catalog = catalog
        self._paths = self._check_overrides(path_overrides or {})
        self._sleep = sleep
        # No Authorization header here: it is added per API call, so download links on
        # other hosts (signed CDN URLs) never receive the key.
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            verify=_tls_context(),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"RunningHubClient(base_url={self._base_url!r}, api_key='***')"

    @property
    def base_url(self) -> str:
        return self._base_url

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
        self._http.close()

    # --- public calls ----------------------------------------------------------------------

    def upload(
        self, path: Path, *, on_progress: Callable[[int, int], None] | None = None
    ) -> UploadResult:
        """Upload a local file (streamed) and return the link to put into `videoUrl`."""
        path = Path(path)
        if not path.is_file():
            raise InputValidationError(
                f"cannot upload {str(path)!r}: it is not a file",
                field="path",
                value=str(path),
                allowed="an existing file",
            )
        size = path.stat().st_size
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

        def attempt(number: int) -> UploadResult:
            with path.open("rb") as file:
                reader = cast(IO[bytes], _ProgressReader(file, size, on_progress))
                body = self._request_json(
                    "POST",
                    _UPLOAD_PATH,
                    "upload",
                    files={"file": (path.name, reader, mime)},
                    attempt=number,
                )
            return self._parse(UploadResult, self._data(body, "upload"), "upload")

        result = self._with_retries("upload", attempt)
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
                # a missing endpoint (HTTP 404, code 1001) created nothing: the alternate
                # spelling of the path is safe to try
                missing = isinstance(error, _NoSuchPath) or error.code == "1001"
                if not missing or index == len(paths) - 1:
                    raise
                logger.warning("%s: %s not found, trying %s", spec.id, path, paths[index + 1])
        raise AssertionError("unreachable")

    def query(self, task_id: str) -> TaskResponse:
        """One look at a task (retried on transient trouble). Read `.state` to interpret it."""
        task_id = self._check_task_id(task_id)
        return self._with_retries("query", lambda number: self._query_once(task_id, number))

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
                if not _poll_can_continue(error) or errors > max_consecutive_errors:
                    raise
                logger.warning("query of task %s failed (%d in a row): %s", task_id, errors, error)
                if isinstance(error, TransientError) and error.retry_after is not None:
                    pause = max(pause, min(error.retry_after, _MAX_RETRY_AFTER))
            else:
                errors = 0
                if on_update is not None:
                    on_update(response)
                state = response.state
                if isinstance(state, Succeeded):
                    logger.info("task %s succeeded with %d output(s)", task_id, len(state.outputs))
                    return response
                if isinstance(state, Failed):
                    raise self._task_failed(task_id, response, state)
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
        body = self._with_retries(
            "account status",
            lambda number: self._request_json(
                "POST",
                _ACCOUNT_PATH,
                "account status",
                json={"apikey": self._key.reveal()},
                attempt=number,
            ),
        )
        return self._parse(AccountStatus, self._data(body, "account status"), "account status")

    def queue_status(self) -> QueueStatus:
        """The key's concurrency limit and current load."""
        body = self._with_retries(
            "queue status",
            lambda number: self._request_json("GET", _QUEUE_PATH, "queue status", attempt=number),
        )
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
        answer = self._with_retries(
            "price preview",
            lambda number: self._request_json(
                "POST", preview_path, "price preview", json=dict(body), attempt=number
            ),
        )
        return self._parse(PricePreview, answer, "price preview")

    def cancel(self, task_id: str) -> bool:
        """Ask RunningHub to cancel a task; False when it does not know the task (807)."""
        task_id = self._check_task_id(task_id)
        try:
            self._with_retries(
                "cancel",
                lambda number: self._request_json(
                    "POST",
                    _CANCEL_PATH,
                    f"cancel of task {task_id}",
                    json={"apiKey": self._key.reveal(), "taskId": task_id},
                    attempt=number,
                ),
            )
        except TaskNotFoundError:
            return False
        logger.info("cancel requested for task %s", task_id)
        return True

    def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> DownloadResult:
        """Stream `url` to `dest` (via `dest.part`), resuming with Range after a cut."""
        self._check_download_url(url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        where = _loggable(url)
        try:
            with part.open("wb") as file:
                transfer = _Transfer(cast(BinaryIO, file), self._retry.attempts)
                retrying = Retrying(
                    retry=retry_if_exception(lambda error: isinstance(error, TransientError)),
                    stop=transfer.stop,
                    wait=lambda state: self._download_wait(state, transfer),
                    sleep=self._sleep,
                    before_sleep=lambda state: self._log_retry(f"download {where}", state),
                    reraise=True,
                )
                for attempt in retrying:
                    with attempt:
                        self._download_once(url, transfer, max_bytes, on_progress)
            # No fsync: the file is read back at once (checked, archived) and a rerun downloads
            # again rather than trusting a file on disk; it cost 0.6 s per GiB (docs/benchmarks.md)
            os.replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        logger.info(
            "downloaded %s: %d bytes, %d resume(s)", where, transfer.written, transfer.resumes
        )
        return DownloadResult(
            path=dest,
            size=transfer.written,
            sha256=transfer.hasher.hexdigest(),
            resumed=transfer.resumes,
        )

    # --- submit ----------------------------------------------------------------------------

    def _submit_with_retries(
        self, spec: ModelSpec, path: str, body: Mapping[str, object]
    ) -> TaskResponse:
        budget = _SubmitBudget(self._retry, self._sleep)
        retrying = Retrying(
            retry=retry_if_exception(_retryable_submit_error),
            stop=budget.stop,
            wait=budget.wait,
            sleep=budget.sleep,
            before_sleep=lambda state: self._log_retry(f"submit to {spec.id}", state),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                task = self._submit_once(spec, path, body, attempt.retry_state.attempt_number)
                logger.info(
                    "submitted to %s: taskId=%s status=%s",
                    spec.id,
                    task.task_id,
                    task.status.value if task.status else None,
                )
                return task
        raise AssertionError("unreachable")

    def _submit_once(
        self, spec: ModelSpec, path: str, body: Mapping[str, object], attempt: int
    ) -> TaskResponse:
        what = f"submit to {spec.id}"
        try:
            response = self._send("POST", path, what, attempt, json=dict(body))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as e:
            raise _ConnectFailed(
                f"could not connect to RunningHub for the {what}; nothing was sent "
                f"({type(e).__name__}: {self._scrub(str(e))})"
            ) from e
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
            raise ProtocolError(f"could not build the {what} request: {self._scrub(str(e))}") from e
        except httpx.TransportError as e:
            # the body may have reached RunningHub: a task may exist
            raise self._unknown_outcome(
                spec, f"the connection failed after the request was sent ({type(e).__name__})"
            ) from e

        status = response.status_code
        if status == 429:
            raise RateLimitedError(
                f"RunningHub refused the {what}: too many requests (HTTP 429)",
                retry_after=_retry_after(response),
            )
        if status >= 500:
            raise self._unknown_outcome(spec, f"RunningHub answered HTTP {status}")
        answer = _json_object(response)
        if answer is None:
            if status in (401, 403, 404, 405, 413):  # refused before any task could exist
                raise self._http_error(status, what, self._excerpt(response))
            raise self._unknown_outcome(
                spec, f"the answer (HTTP {status}) is not JSON: {self._excerpt(response)!r}"
            )
        # A taskId means a task exists (and may be billed), whatever error comes with it: hand
        # it back so the caller records the id instead of believing nothing was created.
        has_task = not _blank(answer.get("taskId"))
        error = None if has_task else self._error_in(answer, response, task_answer=True)
        if error is None and not _blank(answer.get("errorCode")) and not has_task:
            error = self._code_error(answer.get("errorCode"), answer.get("errorMessage"), response)
        if error is not None:
            raise error
        if status >= 400:
            raise self._http_error(status, what, self._excerpt(response))
        try:
            task = TaskResponse.model_validate(answer)
        except (ValidationError, ProtocolError) as e:
            raise self._unknown_outcome(
                spec, f"the answer could not be read: {self._excerpt(response)!r}"
            ) from e
        if task.task_id is None:
            raise self._unknown_outcome(spec, "the answer carries no taskId")
        return task

    def _unknown_outcome(self, spec: ModelSpec, why: str) -> SubmitOutcomeUnknownError:
        return SubmitOutcomeUnknownError(
            f"the submit to {spec.id} was sent but its answer was lost: {why}. A task may "
            "exist and be billed",
            model_id=spec.id,
            hint="Check the RunningHub call record (API call history) before submitting again",
        )

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
                excerpt=self._scrub(json.dumps(answer)[:_EXCERPT]),
            )
        return response

    def _task_failed(self, task_id: str, response: TaskResponse, state: Failed) -> TaskFailedError:
        message = self._scrub(state.message)
        if state.code is not None:
            known = error_for_code(state.code, message)
            text = f"task {task_id} failed: {known.message}"
            # the code's own advice ("Retry later") must not hide that a retry is paid again
            hint = _RESUBMIT_HINT
            if known.hint and known.hint != _RESUBMIT_HINT:
                hint = f"{known.hint}. {_RESUBMIT_HINT}"
        else:
            text, hint = f"task {task_id} failed: {message}", _RESUBMIT_HINT
        logger.warning("task %s failed (code %s)", task_id, state.code)
        return TaskFailedError(
            text,
            task_id=task_id,
            code=state.code,
            hint=hint,
            failed_reason=self._scrub_reason(state.failed_reason),
            usage=response.usage,
        )

    # --- download --------------------------------------------------------------------------

    def _download_once(
        self,
        url: str,
        transfer: _Transfer,
        max_bytes: int | None,
        on_progress: Callable[[int, int | None], None] | None,
    ) -> None:
        resuming = transfer.written > 0 and transfer.resumable
        if transfer.written > 0 and not resuming:
            transfer.restart()
        headers = {"Accept-Encoding": "identity"}
        if resuming:
            headers["Range"] = f"bytes={transfer.written}-"
        try:
            with self._http.stream("GET", url, headers=headers, follow_redirects=True) as response:
                self._start_body(response, transfer, resuming, max_bytes)
                # no chunk_size: httpx would buffer up to it, and a cut would lose that much
                for chunk in response.iter_bytes():
                    transfer.write(chunk)
                    if max_bytes is not None and transfer.written > max_bytes:
                        raise self._too_large(transfer.written, max_bytes)
                    if on_progress is not None:
                        on_progress(transfer.written, transfer.total)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
            raise ProtocolError(f"could not request the download: {self._scrub(str(e))}") from e
        except httpx.TransportError as e:
            raise TransientError(
                f"the download was cut after {transfer.written} bytes ({type(e).__name__})"
            ) from e
        if transfer.total is not None and transfer.written < transfer.total:
            raise TransientError(
                f"the download ended early: {transfer.written} of {transfer.total} bytes"
            )
        if transfer.total is not None and transfer.written != transfer.total:
            raise ProtocolError(
                f"the download sent {transfer.written} bytes but announced {transfer.total}"
            )

    def _start_body(
        self, response: httpx.Response, transfer: _Transfer, resuming: bool, max_bytes: int | None
    ) -> None:
        """Check the status and headers of a download answer before reading its body."""
        status = response.status_code
        if status in (403, 404, 410):
            raise LinkExpiredError(
                f"the download link answered HTTP {status}: it expired (links live about a "
                "day) or never existed",
                hint="Query the task again for a fresh link",
            )
        if status == 429:
            raise RateLimitedError(
                "the download was rate limited (HTTP 429)", retry_after=_retry_after(response)
            )
        if status >= 500:
            raise TransientError(
                f"the download server answered HTTP {status}", retry_after=_retry_after(response)
            )
        if status == 416 and resuming:
            transfer.restart()
            raise TransientError("the server refused to resume (HTTP 416); starting over")
        length = _int_header(response, "Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        start, total = _content_range(response.headers.get("Content-Range"))
        if status == 206 and resuming:
            if start != transfer.written:
                transfer.restart()
                raise TransientError("the server resumed at the wrong offset; starting over")
            transfer.resumes += 1
            transfer.total = total if total is not None else _plus(transfer.written, length)
        elif status == 206 and start in (None, 0):
            transfer.total = total if total is not None else length  # unasked 206 from byte 0
        elif status == 200:
            if transfer.written:
                transfer.restart()  # the server ignored our Range: start over from byte 0
            transfer.total = None if encoded else length
        else:
            raise ProtocolError(
                f"the download answered HTTP {status}", status_code=status, excerpt=f"HTTP {status}"
            )
        # a compressed body's Range and Content-Length count encoded bytes: never resume it
        transfer.resumable = not encoded
        if max_bytes is not None and transfer.total is not None and transfer.total > max_bytes:
            raise self._too_large(transfer.total, max_bytes)

    def _too_large(self, size: int, max_bytes: int) -> InvalidRequestError:
        return InvalidRequestError(
            f"the download is larger than the {max_bytes}-byte limit (at least {size} bytes)"
        )

    def _download_wait(self, state: RetryCallState, transfer: _Transfer) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        return _backoff(self._retry, transfer.observe(state), retry_after)

    def _check_download_url(self, url: str) -> None:
        parts = urlsplit(url if isinstance(url, str) else "")
        schemes = ("https", "http") if self._allow_http else ("https",)
        if parts.scheme not in schemes or not parts.netloc:
            wanted = "an http(s) URL" if self._allow_http else "an https URL"
            raise InputValidationError(
                f"refusing to download {_loggable(str(url))!r}: not {wanted}",
                field="url",
                value=_loggable(str(url)),
                allowed=wanted,
            )

    # --- HTTP plumbing ---------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        attempt: int,
        *,
        json: Mapping[str, object] | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
    ) -> httpx.Response:
        started = time.monotonic()
        response = self._http.request(
            method,
            path,
            json=json,
            files=files,
            headers={"Authorization": f"Bearer {self._key.reveal()}"},
        )
        logger.debug(
            "%s %s (%s) -> HTTP %d in %.2f s (attempt %d)",
            method,
            path,
            what,
            response.status_code,
            time.monotonic() - started,
            attempt,
        )
        return response

    def _request_json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Mapping[str, object] | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        task_answer: bool = False,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """One idempotent call: the JSON answer, or the RunningHubError it stands for."""
        try:
            response = self._send(method, path, what, attempt, json=json, files=files)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
            raise ProtocolError(f"could not build the {what} request: {self._scrub(str(e))}") from e
        except httpx.TransportError as e:
            raise TransientError(
                f"could not reach RunningHub for the {what} ({type(e).__name__}: "
                f"{self._scrub(str(e))})"
            ) from e
        status = response.status_code
        if status == 429:
            raise RateLimitedError(
                f"RunningHub refused the {what}: too many requests (HTTP 429)",
                retry_after=_retry_after(response),
            )
        if status >= 500:
            raise TransientError(
                f"RunningHub answered HTTP {status} to the {what}: {self._excerpt(response)!r}",
                retry_after=_retry_after(response),
            )
        answer = _json_object(response)
        error = None if answer is None else self._error_in(answer, response, task_answer)
        if error is not None:
            raise error
        if answer is None or status >= 400:
            raise self._http_error(status, what, self._excerpt(response))
        return answer

    def _error_in(
        self, answer: Mapping[str, Any], response: httpx.Response, task_answer: bool
    ) -> RunningHubError | None:
        """The error a JSON answer carries, v2 (`errorCode`) or legacy (`code`) style."""
        has_status = not _blank(answer.get("status"))
        if task_answer and has_status:
            return None  # a task's own failure: the caller reads it from `.state`
        if not _blank(answer.get("errorCode")):
            return self._code_error(
                answer.get("errorCode"),
                answer.get("errorMessage"),
                response,
                task_id=answer.get("taskId"),
            )
        if "code" in answer and not _blank(answer.get("code")):
            message = answer.get("msg") or answer.get("message")
            return self._code_error(answer.get("code"), message, response)
        return None

    def _code_error(
        self, code: object, message: object, response: httpx.Response, task_id: object = None
    ) -> RunningHubError:
        error = error_for_code(
            str(code),
            self._scrub(str(message or ""))[:_EXCERPT],
            task_id=None if _blank(task_id) else str(task_id),
        )
        if isinstance(error, TransientError):
            error.retry_after = _retry_after(response)
        return error

    def _http_error(self, status: int, what: str, excerpt: str) -> RunningHubError:
        if status in (401, 403):
            return AuthenticationError(
                f"RunningHub refused the {what} (HTTP {status})",
                hint="Check RUNNINGHUB_API_KEY and that it belongs to this site (.ai or .cn)",
            )
        if status in (404, 405):
            return _NoSuchPath(
                f"RunningHub has no endpoint for the {what} (HTTP {status})",
                hint="Check RUNNINGHUB_BASE_URL and the model path",
            )
        if status in (400, 413, 422):
            return InvalidRequestError(
                f"RunningHub rejected the {what} (HTTP {status}): {excerpt!r}"
            )
        return ProtocolError(
            f"RunningHub answered the {what} with HTTP {status} and no readable JSON: {excerpt!r}",
            status_code=status,
            excerpt=excerpt,
        )

    def _parse(self, model: type[M], data: object, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            excerpt = self._scrub(json.dumps(data, default=str)[:_EXCERPT])
            raise ProtocolError(
                f"RunningHub's answer to the {what} has an unexpected shape: {excerpt!r}",
                excerpt=excerpt,
            ) from e

    def _data(self, answer: Mapping[str, Any], what: str) -> dict[str, Any]:
        data = answer.get("data")
        if not isinstance(data, dict):
            excerpt = self._scrub(json.dumps(answer, default=str)[:_EXCERPT])
            raise ProtocolError(
                f"RunningHub's answer to the {what} carries no data object: {excerpt!r}",
                excerpt=excerpt,
            )
        return data

    def _with_retries(self, what: str, call: Callable[[int], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(lambda error: isinstance(error, TransientError)),
            stop=lambda state: state.attempt_number >= max(1, self._retry.attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(what, state),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return call(attempt.retry_state.attempt_number)
        raise AssertionError("unreachable")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        return _backoff(self._retry, state.attempt_number, retry_after)

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s: attempt %d failed (%s); retrying in %.1f s",
            what,
            state.attempt_number,
            error,
            delay,
        )

    def _excerpt(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())
        return self._scrub(text[:_EXCERPT]) if text else "<empty body>"

    def _scrub(self, text: str) -> str:
        """Remove the key from server text before it goes into a message or a log."""
        return text.replace(self._key.reveal(), "***")

    def _scrub_reason(self, reason: dict[str, Any] | str | None) -> dict[str, Any] | str | None:
        if isinstance(reason, str):
            return self._scrub(reason)
        if isinstance(reason, dict):
            return {k: self._scrub(v) if isinstance(v, str) else v for k, v in reason.items()}
        return reason

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


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _plus(written: int, length: int | None) -> int | None:
    return None if length is None else written + length


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from `bytes start-end/total`; None where absent or `*`."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None, None
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _loggable(url: str) -> str:
    """A URL without its query string: signed links carry credentials there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url[:80]
