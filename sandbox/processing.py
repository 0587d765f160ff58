"""The work a task does while RUNNING: fetch `videoUrl` over HTTP, check it, extend it.

Like the real service, the input is fetched with a plain HTTP client from whatever URL the
client gave (the sandbox's own upload links, a presigned S3 URL, anything reachable): its own
links get no special treatment, so expiry and the server's HTTP behaviour apply to them too.
Any fetch or decode problem fails the task with errorCode 1013 and a failedReason object whose
node_name is "VideoLoader".
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .config import SandboxConfig
from .faults import FaultContext, FaultEngine
from .files import FileStore
from .lifecycle import JobOutcome, Task
from .video import (
    ExtendResult,
    VideoError,
    VideoInfo,
    detect_container,
    extend_video,
    frames_for,
    probe,
)

FETCH_HEADER = "X-Sandbox-Fetch"  # marks the sandbox's own fetches (download faults skip them)
USER_AGENT = "RunningHub-Sandbox-VideoLoader/1.0"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One per process: httpx builds a new one for every client otherwise, loading the CA bundle
    each time (≈ 30 ms of CPU, once per task here)."""
    return httpx.create_ssl_context()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JobError(Exception):
    """Ends the task FAILED with `code` and a failedReason object."""

    def __init__(self, code: str, message: str, node: str, exc_type: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = {
            "exception_type": exc_type or type(self).__name__,
            "exception_message": message,
            "node_name": node,
        }


def _loader_error(message: str, exc_type: str) -> JobError:
    return JobError("1013", message, "VideoLoader", exc_type)


class Processor:
    """Callable run in the worker pool for each task entering RUNNING.

    Every task fetches and checks its input; the encode is done once per distinct input and
    length, and tasks asking for the same again share its output file (each still gets a link
    of its own). The encode is what RunningHub's GPUs do elsewhere; here it would take CPU from
    the client under test, once for every task of a batch that extends the same clip.
    """

    def __init__(self, config: SandboxConfig, files: FileStore, faults: FaultEngine) -> None:
        self.config = config
        self.files = files
        self.faults = faults
        self._made: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Path, ExtendResult]] = {}
        self._lock = threading.Lock()

    def __call__(self, task: Task) -> JobOutcome:
        try:
            return self._process(task)
        except JobError as exc:
            return JobOutcome(
                error_code=exc.code, error_message=exc.message, failed_reason=exc.reason
            )

    def _process(self, task: Task) -> JobOutcome:
        url = task.params["videoUrl"]
        ctx = FaultContext(task.prompt, task.task_id, (task.model.key, *task.model.paths))
        self._fetch_fault(ctx)
        src = self.fetch(url)
        self._check_container(src, task)
        try:
            info = probe(src)
        except VideoError as exc:
            raise _loader_error(f"cannot decode videoUrl: {exc}", "VideoDecodeError") from exc
        kwargs = self._length_args(task, info)
        dst, result = self._extended(task, src, info, kwargs)
        return JobOutcome(output_path=dst, extend=result, input_path=src)

    def _extended(
        self, task: Task, src: Path, info: VideoInfo, kwargs: dict[str, Any]
    ) -> tuple[Path, ExtendResult]:
        key = (_sha256(src), tuple(sorted(kwargs.items())))
        with self._lock:
            made = self._made.get(key)
        if made is not None:
            return made
        dst = self.files.new_path("outputs", ".mp4")
        try:
            result = extend_video(src, dst, **kwargs)
        except VideoError as exc:
            raise _loader_error(f"cannot decode videoUrl: {exc}", "VideoDecodeError") from exc
        except ValueError as exc:
            raise self._too_short(task, info.seconds) from exc
        with self._lock:
            return self._made.setdefault(key, (dst, result))

    def _length_args(self, task: Task, info: VideoInfo) -> dict[str, Any]:
        """extend_video arguments for the model's `duration` semantics ("total" or "added")."""
        seconds = int(task.params["duration"])
        semantics = task.model.duration_semantics
        if semantics == "config":
            semantics = self.config.wan_duration_semantics
        if semantics == "added":
            return {"added_seconds": float(seconds)}
        if frames_for(seconds, info.fps) <= info.frames:
            raise self._too_short(task, info.seconds)
        return {"total_seconds": float(seconds)}

    @staticmethod
    def _too_short(task: Task, input_seconds: float) -> JobError:
        message = (
            f"duration: must exceed the input video's length ({input_seconds:.2f} s): "
            f"duration is the total output length; got {task.params['duration']!r}"
        )
        return JobError("1007", message, "WanVideoExtend", "ValueError")

    def _check_container(self, src: Path, task: Task) -> None:
        try:
            container = detect_container(src)
        except VideoError as exc:
            raise _loader_error(f"videoUrl is not a video: {exc}", "InvalidDataError") from exc
        if container not in task.model.containers:
            allowed = "/".join(sorted(c.upper() for c in task.model.containers))
            raise _loader_error(
                f"unsupported video format {container!r}: {task.model.title} accepts {allowed}",
                "UnsupportedFormatError",
            )

    def _fetch_fault(self, ctx: FaultContext) -> None:
        rule = self.faults.take("fetch", ctx)
        if rule is None:
            return
        params = rule.params
        if rule.kind == "slow":
            time.sleep(float(params.get("seconds", 1.0)))
            return
        messages = {
            "reset": ("ConnectionResetError", "connection reset while fetching videoUrl"),
            "http_500_html": ("HTTPStatusError", f"HTTP {params.get('status', 500)} fetching"),
            "http_429": ("HTTPStatusError", "HTTP 429 fetching videoUrl"),
            "error_code": ("HTTPStatusError", "unexpected answer fetching videoUrl"),
            "non_json": ("InvalidDataError", "videoUrl returned an HTML page, not a video"),
            "expire_urls": ("HTTPStatusError", "HTTP 403 AccessDenied: Request has expired."),
            "truncate_download": ("IncompleteRead", "connection closed before the body ended"),
        }
        exc_type, message = messages.get(rule.kind, ("FetchError", rule.kind))
        raise _loader_error(message, exc_type)

    def fetch(self, url: str) -> Path:
        """Stream `url` to a file under inputs/, enforcing max_input_bytes."""
        limit = self.config.max_input_bytes
        dst = self.files.new_path("inputs", ".bin")
        headers = {FETCH_HEADER: "1", "User-Agent": USER_AGENT}
        try:
            with (
                httpx.Client(
                    timeout=self.config.fetch_timeout_seconds,
                    follow_redirects=True,
                    verify=_tls_context(),
                    trust_env=not _is_loopback(url),  # no proxy for 127.0.0.1 links
                ) as client,
                client.stream("GET", url, headers=headers) as resp,
            ):
                if resp.status_code != 200:
                    raise _loader_error(
                        f"failed to fetch videoUrl: HTTP {resp.status_code}", "HTTPStatusError"
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise self._too_big(int(declared))
                size = 0
                with open(dst, "wb") as fh:
                    for chunk in resp.iter_bytes(256 * 1024):
                        size += len(chunk)
                        if size > limit:
                            raise self._too_big(size)
                        fh.write(chunk)
        except httpx.HTTPError as exc:
            dst.unlink(missing_ok=True)
            raise _loader_error(f"failed to fetch videoUrl: {exc}", type(exc).__name__) from exc
        except JobError:
            dst.unlink(missing_ok=True)
            raise
        return dst

    def _too_big(self, size: int) -> JobError:
        limit_mb = self.config.max_input_bytes / (1024 * 1024)
        return _loader_error(
            f"videoUrl is larger than {limit_mb:g} MB ({size} bytes)", "FileTooLargeError"
        )
