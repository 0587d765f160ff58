"""The error taxonomy: every code in the contract maps to the right class and sentence."""

from __future__ import annotations

import pickle

import pytest

from runninghub import (
    AuthenticationError,
    ConcurrencyLimitError,
    ContentRejectedError,
    InputValidationError,
    InsufficientBalanceError,
    InvalidRequestError,
    LinkExpiredError,
    PollTimeoutError,
    ProtocolError,
    RateLimitedError,
    RunningHubError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    TaskNotFoundError,
    TerminalError,
    TransientError,
    error_for_code,
)

CODES: list[tuple[str, type[RunningHubError]]] = [
    ("1000", TransientError),
    ("1005", TransientError),
    ("1010", TransientError),
    ("1011", TransientError),
    ("1012", TransientError),
    ("808", TransientError),
    ("1003", RateLimitedError),
    ("1520", ConcurrencyLimitError),
    ("421", ConcurrencyLimitError),
    ("1504", TaskFailedError),
    ("1006", TaskFailedError),
    ("1015", TaskFailedError),
    ("1001", InvalidRequestError),
    ("1009", InvalidRequestError),
    ("1007", InvalidRequestError),
    ("1008", InvalidRequestError),
    ("1013", InvalidRequestError),
    ("809", InvalidRequestError),
    ("1002", AuthenticationError),
    ("1014", AuthenticationError),
    ("401", AuthenticationError),
    ("802", AuthenticationError),
    ("806", AuthenticationError),
    ("416", InsufficientBalanceError),
    ("812", InsufficientBalanceError),
    ("1501", ContentRejectedError),
    ("1505", ContentRejectedError),
    ("1004", TaskNotFoundError),
    ("807", TaskNotFoundError),
]


@pytest.mark.parametrize(("code", "kind"), CODES)
def test_error_for_code(code: str, kind: type[RunningHubError]) -> None:
    error = error_for_code(code, "server text")
    assert type(error) is kind
    assert error.code == code
    assert f"(code {code})" in str(error)
    assert "server text" in str(error)
    assert str(error)[0].isupper()


def test_retry_classes() -> None:
    for code in ("1000", "1003", "1005", "1010", "1011", "1012", "1520", "421", "808"):
        assert isinstance(error_for_code(code, ""), TransientError)
    for code in (
        "1001",
        "1002",
        "1004",
        "1007",
        "1008",
        "1009",
        "1013",
        "1014",
        "1501",
        "1505",
        "1504",
        "1006",
        "1015",
        "416",
        "812",
        "802",
        "806",
        "807",
        "809",
    ):
        assert isinstance(error_for_code(code, ""), TerminalError)


def test_key_type_sentence() -> None:
    assert "needs an Enterprise-Shared key" in str(error_for_code("1014", ""))


def test_wrong_site_sentence() -> None:
    assert ".cn" in str(error_for_code("802", "user not exist"))


@pytest.mark.parametrize("code", ["1504", "1006", "1015"])
def test_generation_failures_say_resubmitting_costs(code: str) -> None:
    error = error_for_code(code, "", task_id="42")
    assert isinstance(error, TaskFailedError)
    assert error.task_id == "42"
    assert "new paid task" in str(error)
    assert "42" in str(error)


def test_task_queue_maxed_message_and_numbers() -> None:
    assert isinstance(error_for_code("0", "TASK_QUEUE_MAXED"), ConcurrencyLimitError)
    assert isinstance(error_for_code(" 1520 ", ""), ConcurrencyLimitError)


def test_unknown_code_is_terminal_not_retried() -> None:
    error = error_for_code("9999", "mystery")
    assert type(error) is TerminalError
    assert "mystery" in str(error)
    assert "9999" in str(error)


def test_str_format() -> None:
    error = error_for_code("1007", "duration invalid")
    assert str(error) == (
        "RunningHub rejected the request parameters (RunningHub said: 'duration invalid') "
        "(code 1007). Fix the parameters; the same request will fail again"
    )
    assert error.message.startswith("RunningHub rejected")
    assert error.args == (error.message,)
    assert str(RunningHubError("plain")) == "plain"


def test_hierarchy() -> None:
    assert issubclass(RateLimitedError, TransientError)
    assert issubclass(ConcurrencyLimitError, TransientError)
    for kind in (
        AuthenticationError,
        InvalidRequestError,
        InsufficientBalanceError,
        ContentRejectedError,
        TaskNotFoundError,
        TaskFailedError,
        LinkExpiredError,
    ):
        assert issubclass(kind, TerminalError)
    for other in (SubmitOutcomeUnknownError, PollTimeoutError, ProtocolError, InputValidationError):
        assert not issubclass(other, TransientError | TerminalError)
        assert issubclass(other, RunningHubError)


@pytest.mark.parametrize(
    "error",
    [
        InputValidationError("bad", field="duration", value=40, allowed="5 … 30"),
        ProtocolError("html", status_code=200, excerpt="<html>"),
        RateLimitedError("slow", code="1003", retry_after=7.0),
        TaskFailedError("boom", task_id="1", code="1504", failed_reason={"a": 1}, usage=None),
        SubmitOutcomeUnknownError("lost", model_id="wan-2.7"),
        PollTimeoutError("late", task_id="1", last_status="RUNNING"),
        error_for_code("1014", "key type"),
    ],
)
def test_errors_survive_pickling(error: RunningHubError) -> None:
    # Prefect pickles exceptions into task states
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
