"""The API key never leaks: not in reprs, exceptions, logs or results, even when echoed back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
from rh_fakes import KEY, TASK_ID, VIDEO_URL, WAN_PATH, success_body, task_body

from runninghub import RunningHubClient, RunningHubError, get_model

BODY = get_model("wan-2.7").build_body(VIDEO_URL, {})


def assert_clean(text: str) -> None:
    assert KEY not in text
    assert KEY[:12] not in text  # not even a prefix


def test_client_repr_and_vars(client: RunningHubClient) -> None:
    assert_clean(repr(client))
    assert_clean(str(client))
    assert_clean(repr(vars(client)))
    assert "***" in repr(client)


# Each scenario makes RunningHub echo the key back somewhere; the client must scrub it.
ECHO = f"invalid key {KEY}"
SCENARIOS: list[
    tuple[str, Callable[[respx.MockRouter], object], Callable[[RunningHubClient], object]]
] = [
    (
        "v2 error message",
        lambda m: m.post(WAN_PATH).respond(200, json={"errorCode": "1002", "errorMessage": ECHO}),
        lambda c: c.submit("wan-2.7", BODY),
    ),
    (
        "legacy error message",
        lambda m: m.post("/uc/openapi/accountStatus").respond(200, json={"code": 802, "msg": ECHO}),
        lambda c: c.account_status(),
    ),
    (
        "html error page",
        lambda m: m.post("/openapi/v2/query").respond(200, text=f"<html>{ECHO}</html>"),
        lambda c: c.query(TASK_ID),
    ),
    (
        "5xx page",
        lambda m: m.post("/openapi/v2/query").respond(502, text=f"<html>{ECHO}</html>"),
        lambda c: c.query(TASK_ID),
    ),
    (
        "submit lost",
        lambda m: m.post(WAN_PATH).respond(500, text=ECHO),
        lambda c: c.submit("wan-2.7", BODY),
    ),
    (
        "network error text",
        lambda m: m.post("/openapi/v2/query").mock(side_effect=httpx.ConnectError(ECHO)),
        lambda c: c.query(TASK_ID),
    ),
    (
        "odd shape",
        lambda m: m.get("/openapi/v2/queue/status").respond(
            200, json={"code": 0, "data": {"x": ECHO}}
        ),
        lambda c: c.queue_status(),
    ),
    (
        "task failure",
        lambda m: m.post("/openapi/v2/query").respond(
            200, json=task_body("FAILED", errorCode="1015", errorMessage=ECHO)
        ),
        lambda c: c.wait(TASK_ID, sleep=lambda s: None),
    ),
]


@pytest.mark.parametrize(
    ("setup", "call"), [(s, c) for _, s, c in SCENARIOS], ids=[name for name, _, _ in SCENARIOS]
)
def test_exceptions_never_carry_the_key(
    client: RunningHubClient,
    mock: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    setup: Callable[[respx.MockRouter], object],
    call: Callable[[RunningHubClient], object],
) -> None:
    setup(mock)
    with caplog.at_level(logging.DEBUG), pytest.raises(RunningHubError) as caught:
        call(client)
    error = caught.value
    assert_clean(str(error))
    assert_clean(repr(error))
    assert_clean(repr(error.args))
    assert_clean(repr(vars(error)))
    assert_clean(caplog.text)


def test_full_run_logs_nothing_secret(
    client: RunningHubClient,
    mock: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(b"\x00" * 1000)
    mock.post("/openapi/v2/media/upload/binary").respond(
        200, json={"code": 0, "data": {"download_url": VIDEO_URL, "fileName": "in.mp4"}}
    )
    mock.post(WAN_PATH).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=task_body())]
    )
    mock.post("/openapi/v2/query").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=success_body())]
    )
    mock.post("/uc/openapi/accountStatus").respond(200, json={"code": 0, "data": {}})
    mock.post("/task/openapi/cancel").respond(200, json={"code": 0, "data": None})
    mock.get("https://cdn.rh.test/output/x.mp4").respond(200, content=b"video")

    with caplog.at_level(logging.DEBUG):  # httpx and httpcore debug logs included
        results: list[object] = [
            client.upload(video),
            client.submit("wan-2.7", BODY),
            client.wait(TASK_ID, sleep=lambda s: None),
            client.account_status(),
            client.cancel(TASK_ID),
            client.download("https://cdn.rh.test/output/x.mp4", tmp_path / "out.mp4"),
        ]
    assert caplog.records  # something was logged
    assert_clean(caplog.text)
    for record in caplog.records:
        assert_clean(record.getMessage())
        assert_clean(repr(record.args))
    for result in results:
        assert_clean(repr(result))
