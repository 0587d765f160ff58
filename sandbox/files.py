"""Signed-link store for uploads and results, with expiry and HTTP Range support.

Links look like `<public_url>/files/<token>/<name>`. The token is unguessable; the link expires
`url_ttl_seconds` after it was issued. Expiry is evaluated when the link is used, against the
current setting, so a test can `PATCH /_sandbox/config {"url_ttl_seconds": 0}` to expire every
link already handed out. Files are streamed from disk in chunks, never read whole.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class StoredFile:
    token: str
    name: str
    path: Path
    size: int
    kind: str  # "upload" or "result"
    created_at: float  # wall clock, seconds
    task_id: str | None = None

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/files/{self.token}/{self.name}"

    def expires_at(self, ttl: float) -> float:
        return self.created_at + ttl

    def expired(self, ttl: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at(ttl)


class FileStore:
    """Thread-safe token -> file map over a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self.ensure_dirs()

    def ensure_dirs(self) -> None:
        """(Re)create the storage folders (a restarted server may have removed them)."""
        for sub in ("uploads", "outputs", "inputs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def new_path(self, sub: str, suffix: str) -> Path:
        """A fresh path under `root/sub` to write into."""
        return self.root / sub / f"{secrets.token_hex(12)}{suffix}"

    def add(self, path: Path, name: str, kind: str, task_id: str | None = None) -> StoredFile:
        entry = StoredFile(
            token=secrets.token_urlsafe(18),
            name=name,
            path=path,
            size=path.stat().st_size,
            kind=kind,
            created_at=time.time(),
            task_id=task_id,
        )
        with self._lock:
            self._files[entry.token] = entry
        return entry

    def get(self, token: str, name: str) -> StoredFile | None:
        with self._lock:
            entry = self._files.get(token)
        return entry if entry is not None and entry.name == name else None


class Unsatisfiable(Exception):
    """A Range header that selects no byte of the file (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `bytes=` range; None = serve the whole file.

    Multi-range and malformed headers are ignored (RFC 9110 allows it) and get the full body.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise Unsatisfiable
    return start, min(end, size - 1)


def read_chunks(
    path: Path,
    start: int,
    length: int,
    *,
    stop_after: int | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """Yield `length` bytes from `start` in chunks; with `stop_after`, yield only that many
    bytes and then call `on_stop` (used to cut the connection mid-body)."""
    budget = length if stop_after is None else min(length, stop_after)
    with open(path, "rb") as fh:
        fh.seek(start)
        while budget > 0:
            data = fh.read(min(CHUNK, budget))
            if not data:
                break
            budget -= len(data)
            yield data
    if stop_after is not None and stop_after < length and on_stop is not None:
        on_stop()


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def oss_error_xml(code: str, message: str, extra: dict[str, str] | None = None) -> str:
    """An error body shaped like Alibaba OSS's (RunningHub's links are OSS-signed URLs)."""
    fields = {
        "Code": code,
        "Message": message,
        "RequestId": secrets.token_hex(12).upper(),
        "HostId": "sandbox.runninghub.local",
    }
    fields.update(extra or {})
    inner = "".join(f"  <{k}>{v}</{k}>\n" for k, v in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n{inner}</Error>\n'


def expired_xml(expires_at: float) -> str:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires_at))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return oss_error_xml(
        "AccessDenied", "Request has expired.", {"Expires": iso, "ServerTime": now}
    )
