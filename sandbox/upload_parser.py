"""A tolerant, streaming multipart/form-data parser for the upload endpoint.

Why not a library parser: some RunningHub clients end the body right after the closing
`--boundary--` without the final CRLF (or even right after the last `--boundary`), which strict
parsers reject, and the real service accepts. The file part is streamed to disk chunk by chunk;
a body is never held whole in memory. Other (small) parts are read and dropped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_HEADER_BYTES = 16 * 1024
MAX_SMALL_PART = 64 * 1024
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_PARAM = re.compile(r'(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


class MultipartError(ValueError):
    """The body is not multipart, or ends before its closing boundary."""


class TooLarge(Exception):
    """The file part exceeded the size limit (the rest of the body was still drained)."""


@dataclass
class UploadedFile:
    path: Path
    filename: str
    content_type: str
    size: int


def boundary_of(content_type: str | None) -> bytes:
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("Content-Type must be multipart/form-data")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise MultipartError("multipart Content-Type without a boundary")
    return (match.group(1) or match.group(2)).encode("latin-1")


@dataclass
class _Part:
    name: str
    filename: str | None
    content_type: str


def _parse_headers(raw: bytes) -> _Part:
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    params = {
        m.group(1).lower(): (m.group(2) or m.group(3) or "") for m in _PARAM.finditer(disposition)
    }
    return _Part(
        name=params.get("name", ""),
        filename=params.get("filename"),
        content_type=headers.get("content-type", "application/octet-stream"),
    )


async def save_file_field(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    dest: Path,
    *,
    field: str = "file",
    max_bytes: int,
) -> UploadedFile | None:
    """Stream the body, writing part `field` to `dest`. None if no such part.

    Raises MultipartError for a non-multipart or truncated body and TooLarge past max_bytes
    (after draining the body, so the client can read the answer).
    """
    boundary = boundary_of(content_type)
    parser = _Parser(boundary, field, dest, max_bytes)
    try:
        async for chunk in chunks:
            parser.feed(chunk)
        parser.finish()
    except BaseException:
        parser.discard()
        raise
    if parser.too_large:
        parser.discard()
        raise TooLarge
    return parser.result


class _Parser:
    """State machine: preamble -> (headers -> body)* -> end."""

    def __init__(self, boundary: bytes, field: str, dest: Path, max_bytes: int) -> None:
        self.dash_boundary = b"--" + boundary
        self.delimiter = b"\r\n--" + boundary
        self.field = field
        self.dest = dest
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.state = "preamble"
        self.part: _Part | None = None
        self.sink: BinaryIO | None = None  # open while writing the wanted part
        self.capture = False  # the current part is the wanted one
        self.size = 0
        self.small = 0
        self.too_large = False
        self.result: UploadedFile | None = None

    def feed(self, data: bytes) -> None:
        self.buf += data
        progressed = True
        while progressed and self.state != "end":
            progressed = getattr(self, f"_{self.state}")()

    def finish(self) -> None:
        """End of body: accept the lenient endings, reject a cut-off part."""
        if self.state == "after_delimiter" and not self.buf.strip():
            self.state = "end"  # body stopped right after the last "--boundary"
        if self.state == "after_delimiter" and self.buf.startswith(b"-"):
            self.state = "end"  # "--boundary-" cut one byte short: the closing delimiter
        if self.state == "headers" and not self.buf.strip():
            self.state = "end"  # "--boundary\r\n" and nothing more
        if self.state != "end":
            raise MultipartError(f"multipart body ended early (in {self.state})")

    def discard(self) -> None:
        self._close_sink()
        if self.result is None or self.too_large:
            self.dest.unlink(missing_ok=True)

    # -- states: each returns True when it consumed something and may continue
    def _preamble(self) -> bool:
        idx = self.buf.find(self.dash_boundary)
        if idx < 0:
            keep = len(self.dash_boundary) - 1
            if len(self.buf) > keep:
                del self.buf[: len(self.buf) - keep]
            return False
        del self.buf[: idx + len(self.dash_boundary)]
        self.state = "after_delimiter"
        return True

    def _after_delimiter(self) -> bool:
        if len(self.buf) < 2:
            return False
        head = bytes(self.buf[:2])
        if head == b"--":
            self.state = "end"
            self.buf.clear()
            return True
        # Transport padding (spaces/tabs) may precede the line break.
        stripped = self.buf.lstrip(b" \t")
        if stripped.startswith(b"\r\n"):
            del self.buf[: len(self.buf) - len(stripped) + 2]
        elif stripped.startswith(b"\n"):
            del self.buf[: len(self.buf) - len(stripped) + 1]
        elif len(stripped) < 2:
            return False
        else:
            raise MultipartError("malformed multipart boundary line")
        self.state = "headers"
        return True

    def _headers(self) -> bool:
        idx, sep = self.buf.find(b"\r\n\r\n"), 4
        if idx < 0:
            idx, sep = self.buf.find(b"\n\n"), 2
        if idx < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise MultipartError("multipart part headers too long")
            return False
        self.part = _parse_headers(bytes(self.buf[:idx]))
        del self.buf[: idx + sep]
        self.capture = self.part.name == self.field and self.result is None
        if self.capture:
            self.sink = open(self.dest, "wb")  # noqa: SIM115 - closed in _end_part/discard
            self.size = 0
        self.small = 0
        self.state = "body"
        return True

    def _body(self) -> bool:
        idx = self.buf.find(self.delimiter)
        if idx < 0:
            safe = len(self.buf) - (len(self.delimiter) - 1)
            if safe > 0:
                self._emit(bytes(self.buf[:safe]))
                del self.buf[:safe]
            return False
        self._emit(bytes(self.buf[:idx]))
        del self.buf[: idx + len(self.delimiter)]
        self._end_part()
        self.state = "after_delimiter"
        return True

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.capture:
            self._write(data)
            return
        self.small += len(data)
        if self.small > MAX_SMALL_PART and self.part is not None and self.part.filename is None:
            raise MultipartError(f"form field {self.part.name!r} too large")

    def _write(self, data: bytes) -> None:
        if self.sink is None:  # over the limit already: drain
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            self.too_large = True
            self._close_sink()
            return
        self.sink.write(data)

    def _end_part(self) -> None:
        was_capturing, self.capture = self.capture, False
        if was_capturing and self.sink is not None and self.part is not None:
            self._close_sink()
            self.result = UploadedFile(
                self.dest, self.part.filename or "upload.bin", self.part.content_type, self.size
            )

    def _close_sink(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
