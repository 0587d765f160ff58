"""Downloads: streamed to .part, resumed with Range after a cut, verified, then renamed."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from rh_fakes import FAST, KEY, Sleeps

from runninghub import (
    InputValidationError,
    InvalidRequestError,
    LinkExpiredError,
    ProtocolError,
    RunningHubClient,
    TransientError,
)

URL = "https://cdn.rh.test/output/x.mp4?Expires=1700000000&Signature=abc123"
DATA = bytes(range(256)) * 40  # 10 240 bytes


class CutStream(httpx.SyncByteStream):
    """A body that stops after `data`, optionally with a connection error."""

    def __init__(self, data: bytes, error: Exception | None) -> None:
        self._data = data
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        if self._error is not None:
            raise self._error


class FakeCDN:
    """Serves DATA, honouring Range, and cuts successive answers at the offsets given."""

    def __init__(
        self, cuts: list[int] | None = None, *, honour_range: bool = True, error: bool = True
    ) -> None:
        self.cuts = list(cuts or [])
        self.honour_range = honour_range
        self.error = error
        self.ranges: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("Range"))
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        start = int(match.group(1)) if match and self.honour_range else 0
        body = DATA[start:]
        headers = {"Content-Length": str(len(body)), "Content-Type": "video/mp4"}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"
        if self.cuts:
            cut = self.cuts.pop(0) - start
            error = httpx.ReadError("connection reset by peer") if self.error else None
            return httpx.Response(status, headers=headers, stream=CutStream(body[:cut], error))
        return httpx.Response(status, headers=headers, content=body)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    # downloads go to a CDN host, not the API base URL
    with respx.mock(assert_all_called=False) as router:
        yield router


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_streams_hashes_and_renames(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = mock.get(URL).mock(side_effect=FakeCDN())
    progress: list[tuple[int, int | None]] = []
    dest = tmp_path / "out" / "x.mp4"
    result = client.download(
        URL, dest, on_progress=lambda done, total: progress.append((done, total))
    )
    assert dest.read_bytes() == DATA
    assert (result.path, result.size, result.sha256, result.resumed) == (
        dest,
        len(DATA),
        sha(DATA),
        0,
    )
    assert not dest.with_name("x.mp4.part").exists()
    assert progress[-1] == (len(DATA), len(DATA))
    request = route.calls.last.request
    assert "Authorization" not in request.headers  # the key never goes to a CDN
    assert request.headers["Accept-Encoding"] == "identity"


def test_download_resumes_after_a_connection_cut(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    cdn = FakeCDN(cuts=[4000])
    mock.get(URL).mock(side_effect=cdn)
    result = client.download(URL, tmp_path / "x.mp4")
    assert cdn.ranges == [None, "bytes=4000-"]
    assert result.resumed == 1
    assert result.sha256 == sha(DATA)
    assert (tmp_path / "x.mp4").read_bytes() == DATA


def test_download_resumes_after_short_bodies(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    # the body ends early without an error: caught by comparing with Content-Length
    cdn = FakeCDN(cuts=[1000, 6000], error=False)
    mock.get(URL).mock(side_effect=cdn)
    result = client.download(URL, tmp_path / "x.mp4")
    assert cdn.ranges == [None, "bytes=1000-", "bytes=6000-"]
    assert (result.resumed, result.size, result.sha256) == (2, len(DATA), sha(DATA))


def test_download_restarts_when_range_is_ignored(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    cdn = FakeCDN(cuts=[4000], honour_range=False)
    mock.get(URL).mock(side_effect=cdn)
    result = client.download(URL, tmp_path / "x.mp4")
    assert cdn.ranges == [None, "bytes=4000-"]
    assert (result.resumed, result.sha256) == (0, sha(DATA))
    assert (tmp_path / "x.mp4").read_bytes() == DATA


def test_download_restarts_on_a_wrong_resume_offset(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    def cut(at: int) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Length": str(len(DATA))},
            stream=CutStream(DATA[:at], httpx.ReadError("cut")),
        )

    wrong = httpx.Response(
        206, headers={"Content-Range": f"bytes 10-{len(DATA) - 1}/{len(DATA)}"}, content=DATA[10:]
    )
    answers = [cut(4000), httpx.Response(416), cut(5000), wrong, httpx.Response(200, content=DATA)]
    route = mock.get(URL).mock(side_effect=answers)
    result = client.download(URL, tmp_path / "x.mp4")
    ranges = [call.request.headers.get("Range") for call in route.calls]
    assert ranges == [None, "bytes=4000-", None, "bytes=5000-", None]
    assert result.resumed == 0
    assert result.sha256 == sha(DATA)


def test_download_gives_up_without_progress_and_leaves_nothing(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path, sleeps: Sleeps
) -> None:
    cdn = FakeCDN(cuts=[4000] * 20, honour_range=False)
    route = mock.get(URL).mock(side_effect=cdn)
    with pytest.raises(TransientError, match="cut after 4000 bytes"):
        client.download(URL, tmp_path / "x.mp4")
    assert route.call_count == 5
    assert list(tmp_path.iterdir()) == []


def test_download_more_bytes_than_announced(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    mock.get(URL).respond(200, headers={"Content-Length": "100"}, content=DATA[:150])
    with pytest.raises(ProtocolError, match="150 bytes but announced 100"):
        client.download(URL, tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


def test_download_max_bytes_from_content_length(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = mock.get(URL).mock(side_effect=FakeCDN())
    with pytest.raises(InvalidRequestError, match="1000-byte limit"):
        client.download(URL, tmp_path / "x.mp4", max_bytes=1000)
    assert route.call_count == 1
    assert list(tmp_path.iterdir()) == []


def test_download_max_bytes_while_streaming(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    chunks = [DATA[:600], DATA[600:1200]]
    mock.get(URL).mock(side_effect=lambda request: httpx.Response(200, content=iter(chunks)))
    with pytest.raises(InvalidRequestError):
        client.download(URL, tmp_path / "x.mp4", max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_download_without_content_length(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    mock.get(URL).mock(side_effect=lambda request: httpx.Response(200, content=iter([DATA])))
    result = client.download(URL, tmp_path / "x.mp4")
    assert (result.size, result.sha256) == (len(DATA), sha(DATA))


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_link(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path, status: int
) -> None:
    route = mock.get(URL).respond(status, text="<Error>AccessDenied</Error>")
    with pytest.raises(LinkExpiredError) as caught:
        client.download(URL, tmp_path / "x.mp4")
    assert f"HTTP {status}" in str(caught.value)
    assert "expired" in str(caught.value)
    assert route.call_count == 1


def test_download_retries_server_errors(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path, sleeps: Sleeps
) -> None:
    route = mock.get(URL).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, content=DATA),
        ]
    )
    assert client.download(URL, tmp_path / "x.mp4").size == len(DATA)
    assert route.call_count == 2
    assert sleeps == [2.0]


def test_download_follows_redirects(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    mock.get(URL).respond(302, headers={"Location": "https://cdn2.rh.test/x.mp4"})
    mock.get("https://cdn2.rh.test/x.mp4").respond(200, content=DATA)
    assert client.download(URL, tmp_path / "x.mp4").sha256 == sha(DATA)


def test_http_download_refused_without_allow_http(
    client: RunningHubClient, mock: respx.MockRouter, tmp_path: Path
) -> None:
    route = mock.get("http://cdn.rh.test/x.mp4").respond(200, content=DATA)
    with pytest.raises(InputValidationError) as caught:
        client.download("http://cdn.rh.test/x.mp4", tmp_path / "x.mp4")
    assert caught.value.field == "url"
    assert route.call_count == 0
    with pytest.raises(InputValidationError):
        client.download("file:///etc/passwd", tmp_path / "x.mp4")


def test_http_download_allowed_for_a_sandbox(
    mock: respx.MockRouter, tmp_path: Path, sleeps: Sleeps
) -> None:
    mock.get("http://127.0.0.1:9/x.mp4").respond(200, content=DATA)
    with RunningHubClient(
        KEY, "http://127.0.0.1:9", allow_http=True, retry=FAST, sleep=sleeps
    ) as rh:
        assert rh.download("http://127.0.0.1:9/x.mp4", tmp_path / "x.mp4").size == len(DATA)


def test_download_logs_no_signature(
    client: RunningHubClient,
    mock: respx.MockRouter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock.get(URL).mock(side_effect=FakeCDN(cuts=[100]))
    with caplog.at_level(logging.DEBUG, logger="runninghub"):
        client.download(URL, tmp_path / "x.mp4")
    assert "cdn.rh.test/output/x.mp4" in caplog.text
    assert "Signature" not in caplog.text
