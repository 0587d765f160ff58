"""Small HTTP helpers for tests and demos that drive a sandbox directly (no project client).

Upload a file, submit, poll with a deadline, decode an output. They talk plain httpx to the
wire contract, so they never share code with the `runninghub` client under test.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx

KEY = "sk-sandbox-0001"
OTHER_KEY = "sk-sandbox-0002"
BASE_SETTINGS: dict[str, Any] = {
    "create_seconds": 0.0,
    "queue_seconds": 0.05,
    "run_seconds": 0.2,
    "time_scale": 1.0,
    "concurrency_limit": 3,
    "concurrency_code": "1520",
    "url_ttl_seconds": 86400.0,
    "balance": None,
    "max_upload_bytes": 100 * 1024 * 1024,
    "max_input_bytes": 100 * 1024 * 1024,
    "public_url": None,
    "wan_duration_semantics": "total",
}
WAN = "/openapi/v2/alibaba/wan-2.7/video-extend"
WAN_ALIAS = "/openapi/v2/wan-2.7/video-extend"
SINGLE = "/openapi/v2/skyreels-v3/single-shot-video-extension"
SWITCH = "/openapi/v2/skyreels-v3/shot-switching-video-extension"
UPLOAD = "/openapi/v2/media/upload/binary"
QUERY = "/openapi/v2/query"
TERMINAL = {"SUCCESS", "FAILED", "CANCEL"}
TASK_KEYS = {
    "taskId",
    "status",
    "errorCode",
    "errorMessage",
    "failedReason",
    "usage",
    "results",
    "clientId",
    "promptTips",
}


def upload(client: httpx.Client, path: Path, name: str | None = None) -> str:
    """Upload a file; return its download_url."""
    with open(path, "rb") as fh:
        resp = client.post(UPLOAD, files={"file": (name or path.name, fh, "video/mp4")})
    body = resp.json()
    if body.get("code") != 0:
        raise AssertionError(f"upload failed: {body}")
    return str(body["data"]["download_url"])


def submit(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(path, json=body)
    if resp.status_code != 200:
        raise AssertionError(f"submit answered HTTP {resp.status_code}: {resp.text[:200]}")
    data: dict[str, Any] = resp.json()
    return data


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


def query(client: httpx.Client, task_id: str) -> dict[str, Any]:
    data: dict[str, Any] = client.post(QUERY, json={"taskId": task_id}).json()
    return data


def wait_terminal(client: httpx.Client, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        q = query(client, task_id)
        return q if q["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(done, timeout)
    return result


def decode_info(path: Path) -> tuple[int, Fraction, int, int, bool]:
    """(decoded frame count, frame rate, width, height, has_audio) of a video file."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
        frames = sum(1 for _ in c.decode(stream))
        return (
            frames,
            rate,
            stream.codec_context.width,
            stream.codec_context.height,
            bool(c.streams.audio),
        )


def download(url: str, dest: Path) -> Path:
    with httpx.stream("GET", url, timeout=10) as resp:
        if resp.status_code != 200:
            raise AssertionError(f"download answered HTTP {resp.status_code}")
        with open(dest, "wb") as fh:
            for chunk in resp.iter_bytes():
                fh.write(chunk)
    return dest
