"""Upload endpoint over real HTTP, including the lenient multipart endings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.testkit import KEY, UPLOAD, upload

BOUNDARY = "sandboxtestboundary42"


def raw_multipart(payload: bytes, ending: bytes, *, extra_field: bool = False) -> bytes:
    """A hand-made multipart body whose final bytes are exactly `ending`."""
    parts = b""
    if extra_field:
        parts += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nignored value\r\n'
        ).encode()
    parts += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    return parts + payload + ending


def post_raw(sb: SandboxServer, body: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    hdrs = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        **headers,
    }
    return httpx.post(sb.base_url + UPLOAD, content=body, headers=hdrs, timeout=10)


def test_upload_response_shape_and_link_serves_same_bytes(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    data = clips["mp4"].read_bytes()
    resp = client.post(UPLOAD, files={"file": ("my clip.mp4", data, "video/mp4")})
    assert resp.status_code == 200
    body = resp.json()
    assert body["code"] == 0 and body["message"] == "success"
    info = body["data"]
    assert info["type"] == "video"
    assert info["size"] == str(len(data))
    assert info["fileName"].startswith("openapi/") and info["fileName"].endswith(".mp4")
    assert info["download_url"].startswith(sb.base_url + "/files/")
    got = httpx.get(info["download_url"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data))


@pytest.mark.parametrize(
    "ending",
    [
        b"\r\n--" + BOUNDARY.encode() + b"--\r\n",  # canonical
        b"\r\n--" + BOUNDARY.encode() + b"--",  # no final CRLF (seen in real clients)
        b"\r\n--" + BOUNDARY.encode(),  # closing "--" missing too
    ],
    ids=["canonical", "no-final-crlf", "no-closing-dashes"],
)
def test_upload_lenient_endings(sb: SandboxServer, clips: dict[str, Path], ending: bytes) -> None:
    payload = clips["mp4"].read_bytes()
    resp = post_raw(sb, raw_multipart(payload, ending, extra_field=True))
    body = resp.json()
    assert body["code"] == 0, body
    assert body["data"]["size"] == str(len(payload))
    assert httpx.get(body["data"]["download_url"]).content == payload


def test_upload_streamed_chunked_body(sb: SandboxServer) -> None:
    """A body sent with chunked transfer encoding, in odd-sized pieces, is reassembled."""
    payload = bytes(range(256)) * 4096  # 1 MiB, contains CR/LF and dashes
    body = raw_multipart(payload, b"\r\n--" + BOUNDARY.encode() + b"--")

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 7777):
            yield body[i : i + 7777]

    resp = post_raw(sb, pieces())
    data = resp.json()["data"]
    assert data["size"] == str(len(payload))
    assert data["type"] == "video"
    assert httpx.get(data["download_url"]).content == payload


def test_upload_truncated_body_is_808(sb: SandboxServer) -> None:
    resp = post_raw(sb, raw_multipart(b"x" * 1000, b""))
    assert resp.json()["code"] == 808


def test_upload_requires_file_field_and_multipart(sb: SandboxServer) -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="other"\r\n\r\nv\r\n'
        f"--{BOUNDARY}--\r\n"
    ).encode()
    assert post_raw(sb, body).json()["code"] == 1007
    not_multipart = httpx.post(
        sb.base_url + UPLOAD, content=b"raw", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert not_multipart.json()["code"] == 1007


def test_upload_invalid_key_is_code_401(sb: SandboxServer, clips: dict[str, Path]) -> None:
    resp = httpx.post(
        sb.base_url + UPLOAD,
        files={"file": ("a.mp4", clips["mp4"].read_bytes(), "video/mp4")},
        headers={"Authorization": "Bearer sk-wrong"},
    )
    assert resp.status_code == 200
    assert resp.json() == {"code": 401, "message": "invalid api key"}
    no_header = httpx.post(sb.base_url + UPLOAD, files={"file": ("a.mp4", b"x", "video/mp4")})
    assert no_header.json()["code"] == 401


def test_upload_oversize_is_809(client: httpx.Client, sb: SandboxServer) -> None:
    sb.update_config(max_upload_bytes=50_000)
    resp = client.post(UPLOAD, files={"file": ("big.mp4", b"\0" * 60_000, "video/mp4")})
    assert resp.json() == {"code": 809, "message": "file too large"}
    ok = client.post(UPLOAD, files={"file": ("small.mp4", b"\0" * 40_000, "video/mp4")})
    assert ok.json()["code"] == 0


def test_upload_link_ignores_spoofed_host(sb: SandboxServer, clips: dict[str, Path]) -> None:
    resp = httpx.post(
        sb.base_url + UPLOAD,
        files={"file": ("a.mp4", clips["mp4"].read_bytes(), "video/mp4")},
        headers={"Authorization": f"Bearer {KEY}", "Host": "www.runninghub.cn"},
    )
    url = resp.json()["data"]["download_url"]
    assert url.startswith(sb.base_url + "/files/")
    assert "runninghub.cn" not in url


def test_upload_link_uses_configured_public_url(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    sb.update_config(public_url="https://sandbox.example.test:8443/")
    url = upload(client, clips["mp4"])
    assert url.startswith("https://sandbox.example.test:8443/files/")
    # The same file is still reachable on the bound address (path part unchanged).
    local = sb.base_url + url.removeprefix("https://sandbox.example.test:8443")
    assert httpx.get(local).status_code == 200
