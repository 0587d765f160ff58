"""The multipart body of an upload: the local file checked, then streamed with its progress
reported as httpx reads it."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, cast

from ._transport import Files
from .exceptions import InputValidationError

Progress = Callable[[int, int], None]


class _ProgressReader:
    """A file wrapper that reports upload progress as httpx reads it chunk by chunk."""

    def __init__(self, file: BinaryIO, total: int, on_progress: Progress | None) -> None:
        self._file = file
        self._total = total
        self._sent = 0
        self._on_progress = on_progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._sent += len(chunk)
        if chunk and self._on_progress is not None:
            self._on_progress(self._sent, self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        self._sent = position  # httpx rewinds before each (re)send
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        # httpx sizes the multipart body with fstat, so it can send a Content-Length
        return self._file.fileno()


def upload_size(path: Path) -> int:
    """The size of the file to upload; InputValidationError when it is not a file."""
    if not path.is_file():
        raise InputValidationError(
            f"cannot upload {str(path)!r}: it is not a file",
            field="path",
            value=str(path),
            allowed="an existing file",
        )
    return path.stat().st_size


def multipart(path: Path, file: BinaryIO, size: int, on_progress: Progress | None) -> Files:
    """The `files=` of the upload request: `file` (opened from `path`) under the field "file"."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    reader = cast(IO[bytes], _ProgressReader(file, size, on_progress))
    return {"file": (path.name, reader, mime)}
