"""How failures become exceptions: httpx errors, HTTP statuses, RunningHub's error codes and
answers of the wrong shape, sorted into transient, terminal and, for a submit, outcome unknown.

The money rule lives in the submit half: a submit is only called retryable (_ConnectFailed,
429, 1520/421) where RunningHub surely created nothing; once the body may have been sent, a
lost answer is SubmitOutcomeUnknownError, which nothing retries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ._retry import retry_after
from .exceptions import (
    _RESUBMIT_HINT,
    AuthenticationError,
    ConcurrencyLimitError,
    InvalidRequestError,
    LinkExpiredError,
    ProtocolError,
    RateLimitedError,
    RunningHubError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    TransientError,
    error_for_code,
)
from .models import Failed, TaskResponse

M = TypeVar("M", bound=BaseModel)

Scrub = Callable[[str], str]
"""Removes the API key from server text (Transport.scrub)."""

EXCERPT = 200

# The two private classes keep their leading underscore: exceptions are pickled into Prefect
# states and show their class name in tracebacks, so the names callers saw stay the same.


class _ConnectFailed(TransientError):
    """No connection was made, so nothing was sent: safe to retry even a submit."""


class _NoSuchPath(InvalidRequestError):
    """HTTP 404/405 or code 1001: the endpoint does not exist, so nothing was created."""


# --- reading an answer -----------------------------------------------------------------------


def blank(value: object) -> bool:
    """True for the values RunningHub uses to mean "no error": None, "", "0", 0."""
    return value is None or str(value).strip() in ("", "0")


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content) if response.content.strip() else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def excerpt(response: httpx.Response, scrub: Scrub) -> str:
    text = " ".join(response.text.split())
    return scrub(text[:EXCERPT]) if text else "<empty body>"


def dump_excerpt(data: object, scrub: Scrub) -> str:
    return scrub(json.dumps(data, default=str)[:EXCERPT])


def parse(model: type[M], data: object, what: str, scrub: Scrub) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        text = dump_excerpt(data, scrub)
        raise ProtocolError(
            f"RunningHub's answer to the {what} has an unexpected shape: {text!r}",
            excerpt=text,
        ) from e


def data_object(answer: Mapping[str, Any], what: str, scrub: Scrub) -> dict[str, Any]:
    data = answer.get("data")
    if not isinstance(data, dict):
        text = dump_excerpt(answer, scrub)
        raise ProtocolError(
            f"RunningHub's answer to the {what} carries no data object: {text!r}",
            excerpt=text,
        )
    return data


# --- errors an answer stands for -------------------------------------------------------------


def answer_error(
    answer: Mapping[str, Any], response: httpx.Response, scrub: Scrub, *, task_answer: bool
) -> RunningHubError | None:
    """The error a JSON answer carries, v2 (`errorCode`) or legacy (`code`) style."""
    has_status = not blank(answer.get("status"))
    if task_answer and has_status:
        return None  # a task's own failure: the caller reads it from `.state`
    if not blank(answer.get("errorCode")):
        return code_error(
            answer.get("errorCode"),
            answer.get("errorMessage"),
            response,
            scrub,
            task_id=answer.get("taskId"),
        )
    if "code" in answer and not blank(answer.get("code")):
        message = answer.get("msg") or answer.get("message")
        return code_error(answer.get("code"), message, response, scrub)
    return None


def code_error(
    code: object,
    message: object,
    response: httpx.Response,
    scrub: Scrub,
    task_id: object = None,
) -> RunningHubError:
    error = error_for_code(
        str(code),
        scrub(str(message or ""))[:EXCERPT],
        task_id=None if blank(task_id) else str(task_id),
    )
    if isinstance(error, TransientError):
        error.retry_after = retry_after(response)
    return error


def http_error(status: int, what: str, text: str) -> RunningHubError:
    """The error a 4xx without a readable RunningHub error stands for."""
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
        return InvalidRequestError(f"RunningHub rejected the {what} (HTTP {status}): {text!r}")
    return ProtocolError(
        f"RunningHub answered the {what} with HTTP {status} and no readable JSON: {text!r}",
        status_code=status,
        excerpt=text,
    )


def _rate_limited(what: str, response: httpx.Response) -> RateLimitedError:
    return RateLimitedError(
        f"RunningHub refused the {what}: too many requests (HTTP 429)",
        retry_after=retry_after(response),
    )


def _unbuildable(error: httpx.TransportError) -> bool:
    """httpx refused to build the request (bad URL scheme, bad header): nothing was sent."""
    return isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError)


def _not_built(error: httpx.TransportError, what: str, scrub: Scrub) -> ProtocolError:
    return ProtocolError(f"could not build the {what} request: {scrub(str(error))}")


# --- idempotent calls (upload, query, account, queue, price, cancel) -------------------------


def request_failed(error: httpx.TransportError, what: str, scrub: Scrub) -> RunningHubError:
    """The error an httpx failure of an idempotent call stands for."""
    if _unbuildable(error):
        return _not_built(error, what, scrub)
    return TransientError(
        f"could not reach RunningHub for the {what} ({type(error).__name__}: {scrub(str(error))})"
    )


def json_answer(
    response: httpx.Response, what: str, scrub: Scrub, *, task_answer: bool
) -> dict[str, Any]:
    """The JSON object of an idempotent call's answer, or the RunningHubError it stands for."""
    status = response.status_code
    if status == 429:
        raise _rate_limited(what, response)
    if status >= 500:
        raise TransientError(
            f"RunningHub answered HTTP {status} to the {what}: {excerpt(response, scrub)!r}",
            retry_after=retry_after(response),
        )
    answer = json_object(response)
    error = (
        None if answer is None else answer_error(answer, response, scrub, task_answer=task_answer)
    )
    if error is not None:
        raise error
    if answer is None or status >= 400:
        raise http_error(status, what, excerpt(response, scrub))
    return answer


def poll_can_continue(error: RunningHubError) -> bool:
    """Whether polling may look again after this query error."""
    # ProtocolErrors with an HTTP status are unreadable pages; without one, an unknown status
    return isinstance(error, TransientError) or (
        isinstance(error, ProtocolError) and error.status_code is not None
    )


def task_failed(
    task_id: str, response: TaskResponse, state: Failed, scrub: Scrub
) -> TaskFailedError:
    message = scrub(state.message)
    if state.code is not None:
        known = error_for_code(state.code, message)
        text = f"task {task_id} failed: {known.message}"
        # the code's own advice ("Retry later") must not hide that a retry is paid again
        hint = _RESUBMIT_HINT
        if known.hint and known.hint != _RESUBMIT_HINT:
            hint = f"{known.hint}. {_RESUBMIT_HINT}"
    else:
        text, hint = f"task {task_id} failed: {message}", _RESUBMIT_HINT
    return TaskFailedError(
        text,
        task_id=task_id,
        code=state.code,
        hint=hint,
        failed_reason=_scrub_reason(state.failed_reason, scrub),
        usage=response.usage,
    )


def _scrub_reason(reason: dict[str, Any] | str | None, scrub: Scrub) -> dict[str, Any] | str | None:
    if isinstance(reason, str):
        return scrub(reason)
    if isinstance(reason, dict):
        return {k: scrub(v) if isinstance(v, str) else v for k, v in reason.items()}
    return reason


# --- submit: the money rule ------------------------------------------------------------------


def safe_to_resubmit(error: BaseException) -> bool:
    """True only where RunningHub surely created no task: no connection, 429, no free slot."""
    return isinstance(error, _ConnectFailed | RateLimitedError | ConcurrencyLimitError)


def endpoint_missing(error: InvalidRequestError) -> bool:
    """A missing endpoint (HTTP 404/405, code 1001) created nothing: another path may be tried."""
    return isinstance(error, _NoSuchPath) or error.code == "1001"


def unknown_outcome(model_id: str, why: str) -> SubmitOutcomeUnknownError:
    return SubmitOutcomeUnknownError(
        f"the submit to {model_id} was sent but its answer was lost: {why}. A task may "
        "exist and be billed",
        model_id=model_id,
        hint="Check the RunningHub call record (API call history) before submitting again",
    )


def submit_failed(
    error: httpx.TransportError, model_id: str, what: str, scrub: Scrub
) -> RunningHubError:
    """The error an httpx failure of a submit stands for."""
    if isinstance(
        error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ProxyError
    ):
        return _ConnectFailed(
            f"could not connect to RunningHub for the {what}; nothing was sent "
            f"({type(error).__name__}: {scrub(str(error))})"
        )
    if _unbuildable(error):
        return _not_built(error, what, scrub)
    # the body may have reached RunningHub: a task may exist
    return unknown_outcome(
        model_id, f"the connection failed after the request was sent ({type(error).__name__})"
    )


def submit_answer(response: httpx.Response, model_id: str, what: str, scrub: Scrub) -> TaskResponse:
    """The task a submit's answer describes, or the RunningHubError it stands for."""
    status = response.status_code
    if status == 429:
        raise _rate_limited(what, response)
    if status >= 500:
        raise unknown_outcome(model_id, f"RunningHub answered HTTP {status}")
    answer = json_object(response)
    if answer is None:
        if status in (401, 403, 404, 405, 413):  # refused before any task could exist
            raise http_error(status, what, excerpt(response, scrub))
        raise unknown_outcome(
            model_id, f"the answer (HTTP {status}) is not JSON: {excerpt(response, scrub)!r}"
        )
    # A taskId means a task exists (and may be billed), whatever error comes with it: hand
    # it back so the caller records the id instead of believing nothing was created.
    has_task = not blank(answer.get("taskId"))
    error = None if has_task else answer_error(answer, response, scrub, task_answer=True)
    if error is None and not blank(answer.get("errorCode")) and not has_task:
        error = code_error(answer.get("errorCode"), answer.get("errorMessage"), response, scrub)
    if error is not None:
        raise error
    if status >= 400:
        raise http_error(status, what, excerpt(response, scrub))
    try:
        task = TaskResponse.model_validate(answer)
    except (ValidationError, ProtocolError) as e:
        raise unknown_outcome(
            model_id, f"the answer could not be read: {excerpt(response, scrub)!r}"
        ) from e
    if task.task_id is None:
        raise unknown_outcome(model_id, "the answer carries no taskId")
    return task


# --- download --------------------------------------------------------------------------------


def download_refused(response: httpx.Response) -> RunningHubError | None:
    """The error a download link's status stands for, if it refuses outright."""
    status = response.status_code
    if status in (403, 404, 410):
        return LinkExpiredError(
            f"the download link answered HTTP {status}: it expired (links live about a "
            "day) or never existed",
            hint="Query the task again for a fresh link",
        )
    if status == 429:
        return RateLimitedError(
            "the download was rate limited (HTTP 429)", retry_after=retry_after(response)
        )
    if status >= 500:
        return TransientError(
            f"the download server answered HTTP {status}", retry_after=retry_after(response)
        )
    return None


def download_failed(error: httpx.TransportError, written: int, scrub: Scrub) -> RunningHubError:
    """The error an httpx failure during a download stands for."""
    if _unbuildable(error):
        return ProtocolError(f"could not request the download: {scrub(str(error))}")
    return TransientError(f"the download was cut after {written} bytes ({type(error).__name__})")


def too_large(size: int, max_bytes: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"the download is larger than the {max_bytes}-byte limit (at least {size} bytes)"
    )
