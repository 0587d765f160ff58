"""Upload, account, queue, price preview and cancel; client construction."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr
from rh_fakes import BASE, KEY, TASK_ID, VIDEO_URL, Sleeps

from runninghub import (
    DEFAULT_BASE_URL,
    AuthenticationError,
    InputValidationError,
    InvalidRequestError,
    ProtocolError,
    RunningHubClient,
    TransientError,
    get_model,
)

UPLOAD = "/openapi/v2/media/upload/binary"


def upload_answer(name_key: str = "fileName") -> dict[str, object]:
    return {
        "code": 0,
        "message": "success",
        "data": {
            "type": "video",
            "download_url": "https://cdn.rh.test/openapi/ab12.mp4",
            name_key: "openapi/ab12.mp4",
            "size": "300000",
        },
    }


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(bytes(range(256)) * 1172)  # 300 032 bytes: several read chunks
    return path


# --- construction --------------------------------------------------------------------------


def test_defaults_and_settings() -> None:
    assert DEFAULT_BASE_URL == "https://www.runninghub.ai"
    with RunningHubClient(KEY) as rh:
        assert rh.base_url == DEFAULT_BASE_URL
    with RunningHubClient(SecretStr(KEY), "https://www.runninghub.cn/") as rh:
        assert rh.base_url == "https://www.runninghub.cn"


@pytest.mark.parametrize("key", ["", "   ", SecretStr("")])
def test_empty_key_is_refused(key: str) -> None:
    with pytest.raises(InputValidationError) as caught:
        RunningHubClient(key)
    assert caught.value.field == "RUNNINGHUB_API_KEY"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "ftp://x", "www.runninghub.ai", ""])
def test_base_url_must_be_https(url: str) -> None:
    with pytest.raises(InputValidationError) as caught:
        RunningHubClient(KEY, url)
    assert caught.value.field == "RUNNINGHUB_BASE_URL"


def test_http_base_url_allowed_for_a_sandbox() -> None:
    with RunningHubClient(KEY, "http://127.0.0.1:8000", allow_http=True) as rh:
        assert rh.base_url == "http://127.0.0.1:8000"


def test_transport_injection() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 0, "data": {"concurrentLimit": "2"}})

    with RunningHubClient(KEY, "https://x.test", transport=httpx.MockTransport(handler)) as rh:
        assert rh.queue_status().concurrent_limit == 2
    assert seen[0].url == "https://x.test/openapi/v2/queue/status"


# --- upload --------------------------------------------------------------------------------


@pytest.mark.parametrize("name_key", ["fileName", "filename"])
def test_upload_streams_the_file_as_multipart(
    client: RunningHubClient, mock: respx.MockRouter, video: Path, name_key: str
) -> None:
    route = mock.post(UPLOAD).respond(200, json=upload_answer(name_key))
    progress: list[tuple[int, int]] = []
    result = client.upload(video, on_progress=lambda done, total: progress.append((done, total)))
    assert result.download_url == "https://cdn.rh.test/openapi/ab12.mp4"
    assert result.file_name == "openapi/ab12.mp4"
    assert result.size == 300000

    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    # the length is known up front (file size), not computed by buffering the file
    assert int(request.headers["Content-Length"]) > video.stat().st_size
    assert b'name="file"; filename="clip.mp4"' in request.content
    assert b"Content-Type: video/mp4" in request.content
    assert video.read_bytes() in request.content
    # read in chunks, progress reported as httpx streams them
    assert len(progress) > 1
    assert progress[-1] == (video.stat().st_size, video.stat().st_size)


def test_upload_retries_808_and_network_errors(
    client: RunningHubClient, mock: respx.MockRouter, video: Path
) -> None:
    route = mock.post(UPLOAD).mock(
        side_effect=[
            httpx.Response(200, json={"code": 808, "message": "upload failed"}),
            httpx.ReadError("reset"),
            httpx.Response(200, json=upload_answer()),
        ]
    )
    assert client.upload(video).file_name == "openapi/ab12.mp4"
    assert route.call_count == 3
    # every attempt sent the whole file again
    assert all(video.read_bytes() in call.request.content for call in route.calls)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"code": 809, "message": "file too large"}, InvalidRequestError),
        ({"code": 401, "message": "bad key"}, AuthenticationError),
        ({"code": 0, "message": "success", "data": None}, ProtocolError),
        ({"code": 0, "data": {"fileName": "x"}}, ProtocolError),
    ],
)
def test_upload_errors(
    client: RunningHubClient, mock: respx.MockRouter, video: Path, answer: object, kind: type
) -> None:
    route = mock.post(UPLOAD).respond(200, json=answer)
    with pytest.raises(kind):
        client.upload(video)
    assert route.call_count == 1


def test_upload_missing_file(client: RunningHubClient, tmp_path: Path) -> None:
    with pytest.raises(InputValidationError) as caught:
        client.upload(tmp_path / "nope.mp4")
    assert caught.value.field == "path"


# --- account, queue, price, cancel ---------------------------------------------------------


def test_account_status_sends_the_key_in_the_body(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    route = mock.post("/uc/openapi/accountStatus").respond(
        200,
        json={
            "code": 0,
            "msg": "success",
            "data": {
                "remainCoins": "177814",
                "currentTaskCounts": "0",
                "remainMoney": None,
                "currency": "CNY",
                "apiType": "NORMAL",
            },
        },
    )
    account = client.account_status()
    assert account.remain_coins == 177814
    assert account.remain_money is None
    assert json.loads(route.calls.last.request.content) == {"apikey": KEY}


def test_account_status_wrong_site(client: RunningHubClient, mock: respx.MockRouter) -> None:
    mock.post("/uc/openapi/accountStatus").respond(200, json={"code": 802, "msg": "user not exist"})
    with pytest.raises(AuthenticationError, match=r"\.cn"):
        client.account_status()


def test_queue_status(client: RunningHubClient, mock: respx.MockRouter) -> None:
    mock.get("/openapi/v2/queue/status").respond(
        200,
        json={
            "code": 0,
            "data": {
                "apiKeyType": "SHARED",
                "concurrentLimit": "3",
                "runningCount": "1",
                "queuedCount": "0",
                "totalCurrentTasks": "1",
            },
        },
    )
    queue = client.queue_status()
    assert (queue.concurrent_limit, queue.running_count) == (3, 1)


@pytest.mark.parametrize(
    "answer",
    [
        {"estimatedPrice": "4.25", "currency": "CNY"},
        {"code": 0, "msg": "success", "data": {"estimatedPrice": 4.25, "currency": "CNY"}},
    ],
)
def test_price_preview(client: RunningHubClient, mock: respx.MockRouter, answer: object) -> None:
    route = mock.post("/openapi/v2/price-preview/alibaba/wan-2.7/video-extend").respond(
        200, json=answer
    )
    body = get_model("wan-2.7").build_body(VIDEO_URL, {})
    preview = client.price_preview("wan-2.7", body)
    assert preview.estimated_price == Decimal("4.25")
    assert preview.currency == "CNY"
    assert json.loads(route.calls.last.request.content) == body


def test_price_preview_error(client: RunningHubClient, mock: respx.MockRouter) -> None:
    mock.post("/openapi/v2/price-preview/skyreels-v3/single-shot-video-extension").respond(
        200, json={"errorCode": "1007", "errorMessage": "prompt required"}
    )
    with pytest.raises(InvalidRequestError):
        client.price_preview("skyreels-v3-single-shot", {"videoUrl": VIDEO_URL})


def test_cancel(client: RunningHubClient, mock: respx.MockRouter) -> None:
    route = mock.post("/task/openapi/cancel").mock(
        side_effect=[
            httpx.Response(200, json={"code": 0, "msg": "success", "data": None}),
            httpx.Response(200, json={"code": 807, "msg": "task not found", "data": None}),
            httpx.Response(200, json={"code": 817, "msg": "APIKEY_TASK_CANCEL_NOT_ALLOWED"}),
        ]
    )
    assert client.cancel(TASK_ID) == "cancelled"
    assert client.cancel(TASK_ID) == "not_found"
    assert client.cancel(TASK_ID) == "already_ended"
    assert json.loads(route.calls[0].request.content) == {"apiKey": KEY, "taskId": TASK_ID}


def test_idempotent_calls_retry_5xx_then_give_up(
    client: RunningHubClient, mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.get("/openapi/v2/queue/status").respond(500, text="oops")
    with pytest.raises(TransientError):
        client.queue_status()
    assert route.call_count == 5
    assert len(sleeps) == 4


def test_unexpected_http_status_is_protocol_error(
    client: RunningHubClient, mock: respx.MockRouter
) -> None:
    mock.get("/openapi/v2/queue/status").respond(302, headers={"Location": "https://elsewhere"})
    with pytest.raises(ProtocolError, match="HTTP 302"):
        client.queue_status()


def test_base_url_with_a_path_prefix(sleeps: Sleeps) -> None:
    with respx.mock(base_url=f"{BASE}/rh") as mock:
        route = mock.get("/openapi/v2/queue/status").respond(
            200, json={"code": 0, "data": {"concurrentLimit": 1}}
        )
        with RunningHubClient(KEY, f"{BASE}/rh/", sleep=sleeps) as rh:
            rh.queue_status()
        assert route.called
