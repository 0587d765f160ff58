"""Query (retried, raw) and wait (polling with a deadline), with a fake clock."""

from __future__ import annotations

import json
from typing import cast

import httpx
import pytest
import respx
from rh_fakes import TASK_ID, Sleeps, success_body, task_body

from runninghub import (
    Failed,
    PollTimeoutError,
    ProtocolError,
    RunningHubClient,
    TaskFailedError,
    TaskNotFoundError,
    TaskResponse,
    TaskStatus,
    TransientError,
)

QUERY = "/openapi/v2/query"


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(*bodies: object) -> list[httpx.Response | Exception]:
    """respx side effects: dicts become HTTP 200 JSON answers, the rest passes through."""
    return [
        httpx.Response(200, json=b) if isinstance(b, dict) else cast(httpx.Response | Exception, b)
        for b in bodies
    ]


def wait(client: RunningHubClient, clock: FakeClock, **kwargs: object) -> TaskResponse:
    return client.wait(TASK_ID, clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


# --- query ---------------------------------------------------------------------------------


def test_query_sends_the_task_id(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = mock.post(QUERY).respond(200, json=task_body("RUNNING"))
    task = client.query(TASK_ID)
    assert task.status is TaskStatus.RUNNING
    assert json.loads(route.calls.last.request.content) == {"taskId": TASK_ID}


def test_query_retries_server_errors(
    client: RunningHubClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.post(QUERY).mock(
        side_effect=answers(
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.ReadTimeout("slow"),
            {"errorCode": "1011", "errorMessage": "busy"},
            task_body("RUNNING"),
        )
    )
    assert client.query(TASK_ID).status is TaskStatus.RUNNING
    assert route.call_count == 4
    assert len(sleeps) == 3


def test_query_gives_up_after_attempts(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = mock.post(QUERY).respond(503, text="down")
    with pytest.raises(TransientError, match="HTTP 503"):
        client.query(TASK_ID)
    assert route.call_count == 5


def test_query_rate_limit_honours_retry_after(
    client: RunningHubClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.post(QUERY).mock(
        side_effect=answers(httpx.Response(429, headers={"Retry-After": "3"}), task_body("QUEUED"))
    )
    client.query(TASK_ID)
    assert sleeps == [3.0]


@pytest.mark.parametrize("content", [b"<html>maintenance</html>", b"", b"null"])
def test_query_unreadable_answer_is_protocol_error_not_retried(
    client: RunningHubClient, mock: respx.MockRouter, content: bytes
) -> None:
    route = mock.post(QUERY).respond(200, content=content)
    with pytest.raises(ProtocolError) as caught:
        client.query(TASK_ID)
    assert route.call_count == 1
    assert "HTTP 200" in str(caught.value)
    assert caught.value.status_code == 200


def test_query_unknown_status_is_protocol_error(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    mock.post(QUERY).respond(200, json=task_body("PAUSED"))
    with pytest.raises(ProtocolError):
        client.query(TASK_ID)


def test_query_without_status_or_error_is_protocol_error(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    mock.post(QUERY).respond(200, json={"taskId": TASK_ID})
    with pytest.raises(ProtocolError):
        client.query(TASK_ID)


def test_query_unknown_task(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = mock.post(QUERY).respond(200, json={"errorCode": "1004", "errorMessage": "not found"})
    with pytest.raises(TaskNotFoundError):
        client.query(TASK_ID)
    assert route.call_count == 1


def test_query_returns_task_failures_raw(client: RunningHubClient, mock: respx.MockRouter) -> None:
    mock.post(QUERY).respond(200, json=task_body("RUNNING", errorCode="1504", errorMessage="late"))
    task = client.query(TASK_ID)
    assert task.state == Failed("1504", "late", None)


def test_query_rejects_empty_task_id(client: RunningHubClient) -> None:
    with pytest.raises(ValueError):
        client.query("  ")


# --- wait ----------------------------------------------------------------------------------


def test_wait_until_success(client: RunningHubClient, mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.post(QUERY).mock(
        side_effect=answers(
            task_body("CREATE"),
            task_body("QUEUED"),
            task_body("RUNNING"),
            task_body("RUNNING"),
            success_body(),
        )
    )
    seen: list[TaskStatus | None] = []
    done = wait(client, clock, on_update=lambda task: seen.append(task.status))
    assert done.results[0].url == "https://cdn.rh.test/output/x.mp4"
    assert seen == ["CREATE", "QUEUED", "RUNNING", "RUNNING", "SUCCESS"]
    assert clock.sleeps == [5.0, 7.5, 11.25, 16.875]  # ×1.5 per poll (jitter 0 in tests)


def test_wait_interval_is_capped(client: RunningHubClient, mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.post(QUERY).mock(side_effect=answers(*[task_body("RUNNING")] * 6, success_body()))
    wait(client, clock, interval=10, max_interval=20)
    assert clock.sleeps == [10, 15, 20, 20, 20, 20]


def test_wait_interval_runs_from_the_start_of_each_look(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    """A query that takes 2 s leaves 8 s of sleep to an interval of 10 s, not 10 s more."""
    clock = FakeClock()
    bodies = iter(answers(task_body("RUNNING"), task_body("RUNNING"), success_body()))

    def slow(request: httpx.Request) -> httpx.Response | Exception:
        clock.now += 2.0
        return next(bodies)

    mock.post(QUERY).mock(side_effect=slow)
    wait(client, clock, interval=10, max_interval=20)
    assert clock.sleeps == [8.0, 13.0]


def test_wait_failure_raises_with_reason(client: RunningHubClient, mock: respx.MockRouter) -> None:
    reason = {"exception_type": "RuntimeError", "exception_message": "decoder crashed"}
    usage = {"thirdPartyConsumeMoney": "1.00"}
    mock.post(QUERY).mock(
        side_effect=answers(
            task_body("RUNNING"), task_body("FAILED", failedReason=reason, usage=usage)
        )
    )
    with pytest.raises(TaskFailedError) as caught:
        wait(client, FakeClock())
    error = caught.value
    assert error.task_id == TASK_ID
    assert error.failed_reason == reason
    assert error.usage is not None and str(error.usage.cost) == "1.00"
    assert "decoder crashed" in str(error)
    assert TASK_ID in str(error)
    assert "new paid task" in str(error)


def test_wait_error_code_while_running_fails_at_once(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY).mock(
        side_effect=answers(
            task_body("RUNNING"),
            task_body("RUNNING", errorCode="1504", errorMessage="model response timeout"),
            task_body("RUNNING"),
        )
    )
    with pytest.raises(TaskFailedError) as caught:
        wait(client, FakeClock())
    assert route.call_count == 2
    assert caught.value.code == "1504"
    assert "did not answer in time" in str(caught.value)
    assert "(code 1504)" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (task_body("SUCCESS", results=[]), "without any output"),
        (task_body("SUCCESS", results=None), "without any output"),
        (task_body("CANCEL"), "cancelled"),
        (task_body("FAILED", errorCode=1501, errorMessage="nsfw"), "moderation"),
    ],
)
def test_wait_other_failures(
    client: RunningHubClient, mock: respx.MockRouter, body: dict[str, object], text: str
) -> None:
    mock.post(QUERY).respond(200, json=body)
    with pytest.raises(TaskFailedError, match=text):
        wait(client, FakeClock())


def test_wait_deadline(client: RunningHubClient, mock: respx.MockRouter) -> None:
    clock = FakeClock()
    route = mock.post(QUERY).respond(200, json=task_body("RUNNING"))
    with pytest.raises(PollTimeoutError) as caught:
        wait(client, clock, interval=10, max_interval=10, timeout=35)
    error = caught.value
    assert (error.task_id, error.last_status) == (TASK_ID, "RUNNING")
    assert TASK_ID in str(error) and "RUNNING" in str(error)
    # sleeps never overshoot the deadline, and the last look happens at the deadline
    assert clock.sleeps == [10, 10, 10, 5]
    assert clock.now == 1035.0
    assert route.call_count == 5


def test_wait_tolerates_consecutive_errors_up_to_the_limit(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    flaky: list[object] = [
        httpx.ConnectError("down"),
        httpx.Response(502),
        httpx.Response(200, json={"errorCode": "1003", "errorMessage": "slow down"}),
    ]
    mock.post(QUERY).mock(
        side_effect=answers(
            task_body("RUNNING"),
            *flaky,
            *flaky[:2],
            task_body("RUNNING"),
            *flaky,
            *flaky[:2],
            success_body(),
        )
    )
    assert wait(client, FakeClock(), max_consecutive_errors=5).status is TaskStatus.SUCCESS


def test_wait_raises_after_too_many_consecutive_errors(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY).respond(503)
    with pytest.raises(TransientError):
        wait(client, FakeClock(), max_consecutive_errors=3)
    assert route.call_count == 4  # three tolerated, the fourth raised


def test_wait_tolerates_an_html_page(client: RunningHubClient, mock: respx.MockRouter) -> None:
    mock.post(QUERY).mock(
        side_effect=answers(
            httpx.Response(200, text="<html>502 Bad Gateway</html>"), task_body(), success_body()
        )
    )
    assert wait(client, FakeClock()).status is TaskStatus.SUCCESS


def test_wait_gives_up_on_html_pages_after_the_limit(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY).respond(200, text="<html>502 Bad Gateway</html>")
    with pytest.raises(ProtocolError):
        wait(client, FakeClock(), max_consecutive_errors=2)
    assert route.call_count == 3


def test_wait_unknown_status_fails_at_once(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY).respond(200, json=task_body("PAUSED"))
    with pytest.raises(ProtocolError, match="PAUSED"):
        wait(client, FakeClock())
    assert route.call_count == 1


def test_wait_failed_with_a_busy_code_still_warns_about_paying(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    mock.post(QUERY).respond(200, json=task_body("FAILED", errorCode="1011", errorMessage="busy"))
    with pytest.raises(TaskFailedError) as caught:
        wait(client, FakeClock())
    assert "Retry later. Resubmitting is a new paid task" in str(caught.value)


def test_wait_honours_retry_after(client: RunningHubClient, mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.post(QUERY).mock(
        side_effect=answers(httpx.Response(429, headers={"Retry-After": "20"}), success_body())
    )
    wait(client, clock)
    assert clock.sleeps == [20.0]


def test_wait_stops_on_terminal_errors(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = mock.post(QUERY).respond(200, json={"errorCode": "1004", "errorMessage": "expired"})
    with pytest.raises(TaskNotFoundError):
        wait(client, FakeClock())
    assert route.call_count == 1
