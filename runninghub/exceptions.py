"""The errors the client raises, grouped by what a caller can do about them.

    RunningHubError
    ├── InputValidationError       bad input, caught before any call
    ├── ProtocolError              an answer we cannot read (HTML page, empty body, unknown status)
    ├── TransientError             retrying later can help (network, 429, 5xx, busy codes)
    │   ├── RateLimitedError
    │   └── ConcurrencyLimitError
    ├── TerminalError              retrying cannot help
    │   ├── AuthenticationError, InvalidRequestError, InsufficientBalanceError,
    │   ├── ContentRejectedError, TaskNotFoundError, LinkExpiredError
    │   └── TaskFailedError        the task ran and failed; resubmitting is a new paid task
    ├── SubmitOutcomeUnknownError  a submit was sent but its answer was lost: a task may exist
    └── PollTimeoutError           the task did not finish before our deadline

`str(error)` is a sentence a person understands, followed by the RunningHub code when there is
one. Messages are built by the client from server text with the API key scrubbed out, so no
exception ever carries the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._values import Usage

__all__ = [
    "AuthenticationError",
    "ConcurrencyLimitError",
    "ContentRejectedError",
    "InputValidationError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "LinkExpiredError",
    "PollTimeoutError",
    "ProtocolError",
    "RateLimitedError",
    "RunningHubError",
    "SubmitOutcomeUnknownError",
    "TaskAlreadyEndedError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TerminalError",
    "TransientError",
    "error_for_code",
]


def _restore(cls: type[RunningHubError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RunningHubError(Exception):
    """Base class of every error this package raises."""

    code: str | None
    message: str
    hint: str

    def __init__(self, message: str, *, code: str | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.code:
            text += f" (code {self.code})"
        if self.hint:
            text += f". {self.hint}"
        return text

    # Subclasses take keyword-only arguments, which the default pickling (cls(*args)) drops;
    # Prefect pickles exceptions into task states, so rebuild from the instance dict instead.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class InputValidationError(RunningHubError, ValueError):
    """A parameter, file or setting is invalid; found on our side before any call."""

    field: str
    value: object
    allowed: str

    def __init__(
        self, message: str, *, field: str, value: object = None, allowed: str = "", hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.value = value
        self.allowed = allowed


class ProtocolError(RunningHubError):
    """RunningHub answered something we cannot interpret."""

    status_code: int | None
    excerpt: str

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        excerpt: str = "",
        code: str | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.status_code = status_code
        self.excerpt = excerpt


class TransientError(RunningHubError):
    """Trying again later can succeed. `retry_after` is the server's hint in seconds, if any."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """Too many requests (HTTP 429 or code 1003)."""


class ConcurrencyLimitError(TransientError):
    """The key already runs as many tasks as it may (code 1520, legacy 421 TASK_QUEUE_MAXED)."""


class TerminalError(RunningHubError):
    """No retry can help: fix the cause first."""


class AuthenticationError(TerminalError):
    """The API key is missing, wrong, for the other site, or of the wrong type."""


class InvalidRequestError(TerminalError):
    """The request itself is wrong (path, parameters, file size, input file)."""


class InsufficientBalanceError(TerminalError):
    """The account cannot pay for the task."""


class ContentRejectedError(TerminalError):
    """Content moderation refused the input or the prompt."""


class TaskNotFoundError(TerminalError):
    """RunningHub does not know the task id (wrong, or expired)."""


class TaskAlreadyEndedError(TerminalError):
    """A cancel came after the task ended (817): there is nothing left to stop."""


class LinkExpiredError(TerminalError):
    """A signed download link answered 403/404/410: it expired or never existed."""


class TaskFailedError(TerminalError):
    """The task ran and failed. Resubmitting creates a new, separately billed task."""

    task_id: str | None
    failed_reason: dict[str, Any] | str | None
    usage: Usage | None

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        code: str | None = None,
        hint: str = "",
        failed_reason: dict[str, Any] | str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.task_id = task_id
        self.failed_reason = failed_reason
        self.usage = usage


class SubmitOutcomeUnknownError(RunningHubError):
    """A submit was sent but its answer was lost: a task may exist and be billed.

    Deliberately neither transient nor terminal: retrying could pay twice, giving up could
    lose a paid result. A person (or a recorded call history) has to decide.
    """

    model_id: str

    def __init__(self, message: str, *, model_id: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.model_id = model_id


class PollTimeoutError(RunningHubError):
    """Polling reached its deadline; the task may still finish (and be billed) later."""

    task_id: str
    last_status: str

    def __init__(self, message: str, *, task_id: str, last_status: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.task_id = task_id
        self.last_status = last_status


# --- the code table ------------------------------------------------------------------------

_SMALLER = "Use a smaller file"
_RESUBMIT_HINT = "Resubmitting is a new paid task: only do it if you accept paying again"


@dataclass(frozen=True)
class _Code:
    kind: type[RunningHubError]
    sentence: str
    hint: str = ""


# v2 `errorCode`s and the legacy `code`s that matter (see runninghub-api.md §7).
_CODES: Mapping[str, _Code] = {
    "1000": _Code(TransientError, "RunningHub reported an unknown error", "Retry later"),
    "1005": _Code(TransientError, "RunningHub reported an internal error", "Retry later"),
    "1010": _Code(TransientError, "The RunningHub service is unavailable", "Retry later"),
    "1011": _Code(TransientError, "RunningHub is busy", "Retry later"),
    "1012": _Code(TransientError, "The upstream model provider failed", "Retry later"),
    "808": _Code(TransientError, "The upload to RunningHub failed", "Upload again"),
    "1003": _Code(
        RateLimitedError, "Too many requests to RunningHub (rate limit)", "Slow down and retry"
    ),
    "1520": _Code(
        ConcurrencyLimitError,
        "This API key already runs as many tasks as it may (concurrency limit)",
        "Wait for running tasks to finish",
    ),
    "421": _Code(
        ConcurrencyLimitError,
        "This API key already runs as many tasks as it may (TASK_QUEUE_MAXED)",
        "Wait for running tasks to finish",
    ),
    "TASK_QUEUE_MAXED": _Code(
        ConcurrencyLimitError,
        "This API key already runs as many tasks as it may (TASK_QUEUE_MAXED)",
        "Wait for running tasks to finish",
    ),
    "1504": _Code(TaskFailedError, "The model did not answer in time", _RESUBMIT_HINT),
    "1006": _Code(TaskFailedError, "The task ran out of execution time", _RESUBMIT_HINT),
    "1015": _Code(TaskFailedError, "The model failed to generate the video", _RESUBMIT_HINT),
    "805": _Code(TaskFailedError, "The task failed", _RESUBMIT_HINT),
    "1001": _Code(
        InvalidRequestError,
        "RunningHub does not know this endpoint path",
        "Check the model path (it can be overridden in the settings)",
    ),
    "1009": _Code(
        InvalidRequestError, "RunningHub does not accept this HTTP method here", "Check the path"
    ),
    "1007": _Code(
        InvalidRequestError,
        "RunningHub rejected the request parameters",
        "Fix the parameters; the same request will fail again",
    ),
    "1008": _Code(InvalidRequestError, "The file is too large for RunningHub", _SMALLER),
    "809": _Code(InvalidRequestError, "The file is too large for RunningHub", _SMALLER),
    "1013": _Code(
        InvalidRequestError,
        "RunningHub could not process the input file (bad or expired input URL)",
        "Upload the input again and submit with the new URL",
    ),
    "1002": _Code(
        AuthenticationError, "RunningHub rejected the API key", "Check RUNNINGHUB_API_KEY"
    ),
    "401": _Code(
        AuthenticationError, "RunningHub rejected the API key", "Check RUNNINGHUB_API_KEY"
    ),
    "802": _Code(
        AuthenticationError,
        "RunningHub does not know this API key",
        "Keys do not work across runninghub.ai and runninghub.cn: check the base URL and the key",
    ),
    "806": _Code(
        AuthenticationError,
        "RunningHub rejected the API key",
        "Keys do not work across runninghub.ai and runninghub.cn: check the base URL and the key",
    ),
    "1014": _Code(
        AuthenticationError,
        "This API key cannot call Standard Model APIs: it needs an Enterprise-Shared key",
        "Create an Enterprise-Shared key in the RunningHub console and use it",
    ),
    "416": _Code(
        InsufficientBalanceError,
        "The RunningHub account balance is insufficient",
        "Top up the account",
    ),
    "812": _Code(
        InsufficientBalanceError,
        "The RunningHub account balance is insufficient",
        "Top up the account",
    ),
    "1501": _Code(
        ContentRejectedError,
        "Content moderation rejected the input or the prompt",
        "Change the prompt or the video",
    ),
    "1505": _Code(
        ContentRejectedError,
        "Content moderation rejected the input: real people are not allowed",
        "Use a video without real people",
    ),
    "1004": _Code(TaskNotFoundError, "RunningHub does not know this task (wrong id or expired)"),
    "807": _Code(TaskNotFoundError, "RunningHub does not know this task (wrong id or expired)"),
    "817": _Code(TaskAlreadyEndedError, "The task already ended: there is nothing to cancel"),
}


def _clean_code(code: object) -> str:
    return str(code).strip()


def error_for_code(code: str, message: str, *, task_id: str | None = None) -> RunningHubError:
    """Turn a RunningHub error code and its server message into the matching exception.

    Unknown codes become a TerminalError: an explicit error answer we cannot classify is not
    something a blind retry should repeat (a submit costs money).
    """
    code = _clean_code(code)
    message = (message or "").strip()
    entry = _CODES.get(code)
    if entry is None and message.upper() == "TASK_QUEUE_MAXED":
        entry = _CODES["TASK_QUEUE_MAXED"]
    if entry is None:
        entry = _Code(TerminalError, "RunningHub answered with an error")

    text = entry.sentence
    if message and message.lower() != entry.sentence.lower():
        text += f" (RunningHub said: {message!r})"
    if task_id:
        text += f" [taskId {task_id}]"

    if issubclass(entry.kind, TaskFailedError):
        return entry.kind(text, task_id=task_id, code=code, hint=entry.hint)
    return entry.kind(text, code=code, hint=entry.hint)
