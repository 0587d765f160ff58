"""Signed links: Range, HEAD, expiry, unknown tokens, no redirects."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.testkit import SINGLE, submit, upload, wait_terminal


@pytest.fixture
def link(client: httpx.Client, clips: dict[str, Path]) -> tuple[str, bytes]:
    return upload(client, clips["mp4"]), clips["mp4"].read_bytes()


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=10-999999999", 10, None),
    ],
)
def test_range_206(link: tuple[str, bytes], header: str, start: int, end: int | None) -> None:
    url, data = link
    resp = httpx.get(url, headers={"Range": header})
    assert resp.status_code == 206
    expected = data[start:] if end is None else data[start : end + 1]
    assert resp.content == expected
    first = start % len(data)
    assert resp.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert resp.headers["content-length"] == str(len(expected))
    assert resp.headers["accept-ranges"] == "bytes"


def test_range_416_and_ignored_multi_range(link: tuple[str, bytes]) -> None:
    url, data = link
    resp = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(data)}"
    multi = httpx.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and multi.content == data


def test_head_reports_length_without_body(link: tuple[str, bytes]) -> None:
    url, data = link
    resp = httpx.head(url)
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["content-length"] == str(len(data))
    assert resp.headers["content-type"] == "video/mp4"


def test_expired_links_answer_403_oss_xml(
    client: httpx.Client, sb: SandboxServer, link: tuple[str, bytes], clips: dict[str, Path]
) -> None:
    url, _ = link
    final = wait_terminal(
        client, submit(client, SINGLE, {"prompt": "p", "videoUrl": url})["taskId"]
    )
    result_url = final["results"][0]["url"]
    sb.update_config(url_ttl_seconds=0)
    for target in (url, result_url):
        resp = httpx.get(target)
        assert resp.status_code == 403
        assert resp.headers["content-type"].startswith("application/xml")
        assert "<Code>AccessDenied</Code>" in resp.text and "expired" in resp.text
    sb.update_config(url_ttl_seconds=3600)
    assert httpx.get(result_url).status_code == 200


def test_unknown_link_404_and_no_redirects(sb: SandboxServer, link: tuple[str, bytes]) -> None:
    url, _ = link
    resp = httpx.get(sb.base_url + "/files/unknown-token/x.mp4")
    assert resp.status_code == 404 and "NoSuchKey" in resp.text
    wrong_name = url.rsplit("/", 1)[0] + "/other.mp4"
    assert httpx.get(wrong_name).status_code == 404
    direct = httpx.get(url, follow_redirects=False)
    assert direct.status_code == 200 and not direct.is_redirect
