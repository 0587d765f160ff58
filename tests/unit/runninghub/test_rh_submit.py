"""Submit: retried only when RunningHub surely created nothing; lost answers are reported."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from rh_fakes import BASE, KEY, TASK_ID, VIDEO_URL, WAN_PATH, Sleeps, success_body, task_body

from runninghub import (
    AuthenticationError,
    ConcurrencyLimitError,
    InputValidationError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitedError,
    RetryPolicy,
    RunningHubClient,
    SubmitOutcomeUnknownError,
    Succeeded,
    TaskStatus,
    TransientError,
    get_model,
)

BODY = get_model("wan-2.7").build_body(VIDEO_URL, {"duration": 10, "prompt": "keep walking"})


def submit_route(mock: respx.MockRouter, path: str = WAN_PATH) -> respx.Route:
    return mock.post(path)


def test_submit_ok_sends_bearer_and_the_body(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = submit_route(mock).respond(200, json=task_body("QUEUED"))
    task = client.submit("wan-2.7", BODY)
    assert task.task_id == TASK_ID
    assert task.status is TaskStatus.QUEUED
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["User-Agent"] == "rh-extend"
    sent = json.loads(request.content)
    assert sent == BODY
    assert sent["duration"] == "10"  # Wan duration travels as a string
    assert "apiKey" not in sent


def test_submit_may_already_be_done(client: RunningHubClient, mock: respx.MockRouter) -> None:
    submit_route(mock).respond(200, json=success_body())
    assert isinstance(client.submit("wan-2.7", BODY).state, Succeeded)


def test_connect_error_is_retried(
    client: RunningHubClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = submit_route(mock).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("slow"),
            httpx.Response(200, json=task_body()),
        ]
    )
    assert client.submit("wan-2.7", BODY).task_id == TASK_ID
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_connect_error_gives_up_after_attempts(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = submit_route(mock).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransientError, match="nothing was sent"):
        client.submit("wan-2.7", BODY)
    assert route.call_count == 5


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.WriteTimeout("write timed out"),
    ],
)
def test_lost_answer_is_unknown_outcome_sent_once(
    client: RunningHubClient, mock: respx.MockRouter, failure: Exception
) -> None:
    route = submit_route(mock).mock(side_effect=failure)
    with pytest.raises(SubmitOutcomeUnknownError) as caught:
        client.submit("wan-2.7", BODY)
    assert route.call_count == 1
    error = caught.value
    assert error.model_id == "wan-2.7"
    assert "a task may exist and be billed" in str(error).lower()
    assert "call record" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_is_unknown_outcome(
    client: RunningHubClient, mock: respx.MockRouter, status: int
) -> None:
    route = submit_route(mock).respond(status, text="<html>Bad gateway</html>")
    with pytest.raises(SubmitOutcomeUnknownError, match=f"HTTP {status}"):
        client.submit("wan-2.7", BODY)
    assert route.call_count == 1


@pytest.mark.parametrize("content", [b"", b"<html>oops</html>", b"[1, 2]", b'{"status": "QUEUED"}'])
def test_unreadable_ok_answer_is_unknown_outcome(
    client: RunningHubClient, mock: respx.MockRouter, content: bytes
) -> None:
    route = submit_route(mock).respond(200, content=content)
    with pytest.raises(SubmitOutcomeUnknownError):
        client.submit("wan-2.7", BODY)
    assert route.call_count == 1


def test_unknown_status_with_a_task_id_is_unknown_outcome(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    submit_route(mock).respond(200, json=task_body("PAUSED"))
    with pytest.raises(SubmitOutcomeUnknownError, match="PAUSED"):
        client.submit("wan-2.7", BODY)


def test_http_429_is_retried_honouring_retry_after(
    client: RunningHubClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = submit_route(mock).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=task_body()),
        ]
    )
    assert client.submit("wan-2.7", BODY).task_id == TASK_ID
    assert route.call_count == 2
    assert sleeps == [7.0]


def test_http_429_gives_up_after_attempts(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = submit_route(mock).respond(429)
    with pytest.raises(RateLimitedError):
        client.submit("wan-2.7", BODY)
    assert route.call_count == 5


def test_code_1003_is_retried(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = submit_route(mock).mock(
        side_effect=[
            httpx.Response(200, json={"errorCode": "1003", "errorMessage": "rate exceeded"}),
            httpx.Response(200, json=task_body()),
        ]
    )
    assert client.submit("wan-2.7", BODY).task_id == TASK_ID
    assert route.call_count == 2


def test_concurrency_full_waits_then_succeeds(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=2, initial=2.0, maximum=8.0, jitter=0.0, concurrency_wait=600)
    route = submit_route(mock).mock(
        side_effect=[
            httpx.Response(200, json={"errorCode": "1520", "errorMessage": "concurrent limit"}),
            httpx.Response(200, json={"code": 421, "msg": "TASK_QUEUE_MAXED", "data": None}),
            httpx.Response(200, json={"errorCode": 1520, "errorMessage": ""}),
            httpx.Response(200, json=task_body()),
        ]
    )
    with RunningHubClient(KEY, BASE, retry=policy, sleep=sleeps) as rh:
        assert rh.submit("wan-2.7", BODY).task_id == TASK_ID
    # more waits than `attempts` allows: concurrency has its own time budget, with backoff
    assert route.call_count == 4
    assert sleeps == [2.0, 4.0, 8.0]


def test_concurrency_full_gives_up_after_its_budget(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=2, initial=1.0, maximum=1.0, jitter=0.0, concurrency_wait=3.0)
    route = submit_route(mock).respond(200, json={"errorCode": "1520", "errorMessage": "full"})
    with (
        RunningHubClient(KEY, BASE, retry=policy, sleep=sleeps) as rh,
        pytest.raises(ConcurrencyLimitError),
    ):
        rh.submit("wan-2.7", BODY)
    assert route.call_count == 4
    assert sum(sleeps) == 3.0


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"errorCode": "1007", "errorMessage": "duration invalid"}, InvalidRequestError),
        ({"errorCode": "1002", "errorMessage": "invalid key"}, AuthenticationError),
        ({"errorCode": "1014", "errorMessage": "key type"}, AuthenticationError),
        ({"code": 812, "msg": "balance not enough", "data": None}, InsufficientBalanceError),
        ({"errorCode": "1011", "errorMessage": "busy"}, TransientError),
        (
            {"taskId": None, "status": None, "errorCode": "1008", "errorMessage": ""},
            InvalidRequestError,
        ),
    ],
)
def test_explicit_error_answer_raises_once(
    client: RunningHubClient, mock: respx.MockRouter, answer: dict[str, object], kind: type
) -> None:
    route = submit_route(mock).respond(200, json=answer)
    with pytest.raises(kind) as caught:
        client.submit("wan-2.7", BODY)
    assert type(caught.value) is kind
    assert route.call_count == 1


def test_error_code_with_a_status_but_no_task_id_raises(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    submit_route(mock).respond(200, json=task_body("FAILED", taskId="", errorCode="1007"))
    with pytest.raises(InvalidRequestError):
        client.submit("wan-2.7", BODY)


def test_error_code_with_a_task_id_returns_the_task(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    # a task exists (and may be billed): its id must reach the caller
    submit_route(mock).respond(200, json=task_body("FAILED", errorCode="1504"))
    task = client.submit("wan-2.7", BODY)
    assert task.task_id == TASK_ID
    assert task.error_code == "1504"


def test_error_code_with_a_task_id_but_no_status_returns_the_task(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    # the status is missing, but the taskId says a task exists: never report "nothing created"
    answer = {"taskId": TASK_ID, "status": None, "errorCode": "1011", "errorMessage": "busy"}
    route = submit_route(mock).respond(200, json=answer)
    task = client.submit("wan-2.7", BODY)
    assert task.task_id == TASK_ID
    assert task.error_code == "1011"
    assert route.call_count == 1


def test_html_auth_page_is_authentication_error(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    submit_route(mock).respond(401, text="<html>Unauthorized</html>")
    with pytest.raises(AuthenticationError):
        client.submit("wan-2.7", BODY)


def test_missing_path_falls_back_to_the_alternate_path(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    primary = submit_route(mock).respond(404, json={"detail": "Not Found"})
    alternate = submit_route(mock, "/openapi/v2/wan-2.7/video-extend").respond(
        200, json=task_body()
    )
    assert client.submit("wan-2.7", BODY).task_id == TASK_ID
    assert (primary.call_count, alternate.call_count) == (1, 1)


def test_code_1001_falls_back_then_reports(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    submit_route(mock).respond(200, json={"errorCode": "1001", "errorMessage": "bad path"})
    submit_route(mock, "/openapi/v2/wan-2.7/video-extend").respond(404)
    with pytest.raises(InvalidRequestError):
        client.submit("wan-2.7", BODY)


def test_path_override_is_the_only_path(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = submit_route(mock, "/custom/wan").respond(200, json=task_body())
    default = submit_route(mock).respond(200, json=task_body())
    with RunningHubClient(KEY, BASE, sleep=sleeps, path_overrides={"wan-2.7": "/custom/wan"}) as rh:
        rh.submit("wan-2.7", BODY)
    assert (route.call_count, default.call_count) == (1, 0)


def test_bad_path_override_and_unknown_model() -> None:
    with pytest.raises(InputValidationError):
        RunningHubClient(KEY, path_overrides={"wan-2.7": "no-slash"})
    with pytest.raises(InputValidationError):
        RunningHubClient(KEY, path_overrides={"wan-9": "/x"})


def test_submit_checks_model_and_video_url_before_any_call(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = submit_route(mock).respond(200, json=task_body())
    with pytest.raises(InputValidationError) as caught:
        client.submit("wan-9", BODY)
    assert caught.value.field == "model"
    with pytest.raises(InputValidationError) as caught:
        client.submit("wan-2.7", {"duration": "5"})
    assert caught.value.field == "videoUrl"
    assert route.call_count == 0
