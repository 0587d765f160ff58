"""Streaming a result to disk: through `dest.part`, resumed with Range after a cut, its length
and size limit checked, hashed on the way, moved into place when whole."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import httpx
from tenacity import RetryCallState

from ._errors import download_failed, download_refused, too_large
from ._retry import RetryPolicy, hinted_delay, is_transient, retrying, run
from ._transport import Transport, check_download_url, loggable
from .exceptions import ProtocolError, TransientError
from .models import DownloadResult

logger = logging.getLogger("runninghub")

Progress = Callable[[int, int | None], None]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Transfer:
    """The state of one download across resumes: file, hash, byte counts."""

    def __init__(self, file: BinaryIO, attempts: int) -> None:
        self.file = file
        self.hasher = hashlib.sha256()
        self.written = 0
        self.total: int | None = None
        self.resumable = True
        self.resumes = 0
        self._attempts = max(1, attempts)
        self._written_at_last_failure = 0
        self._observed = 0
        self.stalls = 0  # failures in a row that brought no new bytes

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        self.written = 0
        self.total = None

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.hasher.update(chunk)
        self.written += len(chunk)

    def observe(self, state: RetryCallState) -> int:
        """Count a failed attempt once (tenacity asks `stop` and `wait` about each one)."""
        if state.attempt_number != self._observed:
            self._observed = state.attempt_number
            # a cut that still brought bytes is progress: only failures without progress count
            self.stalls = 0 if self.written > self._written_at_last_failure else self.stalls
            self.stalls += 1
            self._written_at_last_failure = self.written
        return self.stalls

    def stop(self, state: RetryCallState) -> bool:
        # the hard cap stops a server that trickles one byte per connection from looping forever
        stalls = self.observe(state)
        return stalls >= self._attempts or state.attempt_number >= 10 * self._attempts


def download(
    transport: Transport,
    url: str,
    dest: Path,
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    max_bytes: int | None,
    on_progress: Progress | None,
) -> DownloadResult:
    """Stream `url` to `dest` (via `dest.part`), resuming with Range after a cut."""
    check_download_url(url, transport.allow_http)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    where = loggable(url)
    try:
        with part.open("wb") as file:
            transfer = _Transfer(cast(BinaryIO, file), policy.attempts)
            attempts = retrying(
                f"download {where}",
                retry=is_transient,
                stop=transfer.stop,
                wait=lambda state: hinted_delay(policy, state, transfer.observe(state)),
                sleep=sleep,
            )
            run(
                attempts, lambda _: _download_once(transport, url, transfer, max_bytes, on_progress)
            )
        # No fsync: the file is read back at once (checked, archived) and a rerun downloads
        # again rather than trusting a file on disk; it cost 0.6 s per GiB (docs/benchmarks.md)
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    logger.info("downloaded %s: %d bytes, %d resume(s)", where, transfer.written, transfer.resumes)
    return DownloadResult(
        path=dest,
        size=transfer.written,
        sha256=transfer.hasher.hexdigest(),
        resumed=transfer.resumes,
    )


def _download_once(
    transport: Transport,
    url: str,
    transfer: _Transfer,
    max_bytes: int | None,
    on_progress: Progress | None,
) -> None:
    resuming = transfer.written > 0 and transfer.resumable
    if transfer.written > 0 and not resuming:
        transfer.restart()
    headers = {"Accept-Encoding": "identity"}
    if resuming:
        headers["Range"] = f"bytes={transfer.written}-"
    try:
        with transport.stream(url, headers) as response:
            _start_body(response, transfer, resuming, max_bytes)
            # no chunk_size: httpx would buffer up to it, and a cut would lose that much
            for chunk in response.iter_bytes():
                transfer.write(chunk)
                if max_bytes is not None and transfer.written > max_bytes:
                    raise too_large(transfer.written, max_bytes)
                if on_progress is not None:
                    on_progress(transfer.written, transfer.total)
    except httpx.TransportError as e:
        raise download_failed(e, transfer.written, transport.scrub) from e
    if transfer.total is not None and transfer.written < transfer.total:
        raise TransientError(
            f"the download ended early: {transfer.written} of {transfer.total} bytes"
        )
    if transfer.total is not None and transfer.written != transfer.total:
        raise ProtocolError(
            f"the download sent {transfer.written} bytes but announced {transfer.total}"
        )


def _start_body(
    response: httpx.Response, transfer: _Transfer, resuming: bool, max_bytes: int | None
) -> None:
    """Check the status and headers of a download answer before reading its body."""
    refused = download_refused(response)
    if refused is not None:
        raise refused
    status = response.status_code
    if status == 416 and resuming:
        transfer.restart()
        raise TransientError("the server refused to resume (HTTP 416); starting over")
    length = _int_header(response, "Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    start, total = _content_range(response.headers.get("Content-Range"))
    if status == 206 and resuming:
        if start != transfer.written:
            transfer.restart()
            raise TransientError("the server resumed at the wrong offset; starting over")
        transfer.resumes += 1
        transfer.total = total if total is not None else _plus(transfer.written, length)
    elif status == 206 and start in (None, 0):
        transfer.total = total if total is not None else length  # unasked 206 from byte 0
    elif status == 200:
        if transfer.written:
            transfer.restart()  # the server ignored our Range: start over from byte 0
        transfer.total = None if encoded else length
    else:
        raise ProtocolError(
            f"the download answered HTTP {status}", status_code=status, excerpt=f"HTTP {status}"
        )
    # a compressed body's Range and Content-Length count encoded bytes: never resume it
    transfer.resumable = not encoded
    if max_bytes is not None and transfer.total is not None and transfer.total > max_bytes:
        raise too_large(transfer.total, max_bytes)


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _plus(written: int, length: int | None) -> int | None:
    return None if length is None else written + length


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from `bytes start-end/total`; None where absent or `*`."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None, None
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))
