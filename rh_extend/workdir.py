"""The local working folder (`RH_EXTEND_WORKDIR`): where runs keep their copies, and how it
stays bounded.

- `runs/<request key>/<id>/` — one run's download (and the contact sheet drawn from it);
- `sources/source-<random>/` — one run's staged copy of an https or s3:// source. A local source
  is read where it is: it is never copied, and never removed.

A run that archived its result removes its own folders at once (`remove_run_copies`). A failed
run leaves them for whoever resumes it; `sweep` removes every folder whose newest entry is older
than the retention (`RH_EXTEND_WORKDIR_RETENTION_H`), and `maybe_sweep` runs it at the start of a
run when this process last swept that workdir more than `SWEEP_EVERY_S` ago.

Several processes may share one workdir (workers and `serve` on one machine). Nothing here locks:
a run only removes the folders it made itself, and the sweep only folders untouched for the
retention, which is far longer than any run — a live run's folder always holds an entry younger
than that (its files are written as it goes, the folder itself is made when the run needs it).
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

RUNS = "runs"
SOURCES = "sources"
SWEEP_EVERY_S = 600.0
MAKE_ATTEMPTS = 3


@dataclass(frozen=True)
class Removal:
    """What was removed: files, their bytes, and the folders they were in (workdir-relative)."""

    files: int = 0
    bytes: int = 0
    folders: tuple[str, ...] = ()

    def __add__(self, other: Removal) -> Removal:
        return Removal(
            self.files + other.files, self.bytes + other.bytes, self.folders + other.folders
        )

    def describe(self) -> str:
        """`3 files, 1.2 MB`."""
        plural = "" if self.files == 1 else "s"
        return f"{self.files} file{plural}, {_size(self.bytes)}"


def _size(num: int) -> str:
    value = float(num)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


# --- where a run's copies go ---------------------------------------------------------------

_tracked: ContextVar[list[Path] | None] = ContextVar("rh_extend_workdir_tracked", default=None)


@contextmanager
def tracked_copies() -> Iterator[list[Path]]:
    """The folders made inside this block (in this context), listed as they are made: for a
    chain that is started over, whose new run makes copies of its own."""
    made: list[Path] = []
    token = _tracked.set(made)
    try:
        yield made
    finally:
        _tracked.reset(token)


def _made(folder: Path) -> Path:
    made = _tracked.get()
    if made is not None:
        made.append(folder)
    return folder


def download_folder(workdir: Path, request_key: str) -> Path:
    """A new folder of this run's own for the download of REQUEST_KEY's result: runs of the same
    request on one machine (one resuming the task another submitted) never share a file."""
    folder = workdir / RUNS / request_key / uuid.uuid4().hex[:12]
    for _ in range(MAKE_ATTEMPTS - 1):
        try:
            folder.mkdir(parents=True)
            return _made(folder)
        except FileNotFoundError:  # a sweep removed the request's empty folder in between
            continue
    folder.mkdir(parents=True)
    return _made(folder)


def staging_folder(workdir: Path) -> Path:
    """A new folder of this run's own for a staged copy of its source."""
    sources = workdir / SOURCES
    sources.mkdir(parents=True, exist_ok=True)  # never removed: no race with a sweep
    return _made(Path(tempfile.mkdtemp(prefix="source-", dir=sources)))


def remove_if_empty(folder: Path) -> None:
    """A run's folder that a failed transfer left empty (the transfer removed its partial file),
    and its request's folder if that is empty now too."""
    _rmdir(folder)
    if folder.parent.parent.name == RUNS:
        _rmdir(folder.parent)


# --- removing them -------------------------------------------------------------------------


def _own_folder(workdir: Path, path: Path) -> Path | None:
    """The run folder PATH is or lies in (`runs/<key>/<id>` or `sources/<name>`), or None for a
    path that is not a run's copy in WORKDIR (a user's own file, say): that is never touched."""
    root = workdir.resolve()
    try:
        parts = path.resolve().relative_to(root).parts
    except ValueError:
        return None
    depth = {RUNS: 3, SOURCES: 2}.get(parts[0] if parts else "", 0)
    if not depth or len(parts) < depth:
        return None
    folder = root.joinpath(*parts[:depth])
    return folder if folder.is_dir() and not folder.is_symlink() else None


def _remove(path: Path, root: Path) -> Removal:
    """Remove PATH (a file or a whole folder, symbolic links not followed), counting what went.
    What vanished meanwhile (another process's sweep) is not counted, and is no error."""
    files = size = 0

    def unlink(entry: str) -> None:
        nonlocal files, size
        try:
            length = os.lstat(entry).st_size
            os.unlink(entry)
        except FileNotFoundError:
            return
        files, size = files + 1, size + length

    if path.is_symlink() or not path.is_dir():
        unlink(str(path))
    else:
        for parent, folders, names in os.walk(path, topdown=False):
            for name in names:
                unlink(os.path.join(parent, name))
            for name in folders:
                entry = os.path.join(parent, name)
                if os.path.islink(entry):
                    unlink(entry)
                else:
                    _rmdir(Path(entry))
        _rmdir(path)
    return Removal(files, size, (path.relative_to(root).as_posix(),))


def _rmdir(folder: Path) -> None:
    """Remove FOLDER if it is empty; gone already or not empty is no error."""
    try:
        folder.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
            raise


def remove_run_copies(workdir: Path, paths: Iterable[Path | None]) -> Removal:
    """Remove the folders of a run's own copies (PATHS: its download, its staged copy, or their
    folders), and the request's folder once nothing else is in it. Paths outside the workdir's
    run folders are left alone."""
    root = workdir.resolve()
    removal = Removal()
    for path in paths:
        folder = _own_folder(workdir, path) if path is not None else None
        if folder is None:
            continue
        removal += _remove(folder, root)
        if folder.parent.parent == root / RUNS:
            _rmdir(folder.parent)  # kept while another run of the request has a folder there
    return removal


# --- the sweep -----------------------------------------------------------------------------


def _run_entries(root: Path) -> Iterator[Path]:
    """Every run's copy: `runs/<key>/<entry>` and `sources/<entry>` (a folder, or a file left
    by an older layout)."""
    runs = root / RUNS
    for request in _listing(runs):
        if request.is_dir() and not request.is_symlink():
            yield from _listing(request)
        else:
            yield request
    yield from _listing(root / SOURCES)


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def newest_mtime(path: Path) -> float:
    """The latest modification time of PATH and of everything in it; +inf if it vanished."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for parent, folders, names in os.walk(path):
                for name in (*folders, *names):
                    newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
    except FileNotFoundError:
        return float("inf")
    return newest


def sweep(workdir: Path, retention_s: float, now: float | None = None) -> Removal:
    """Remove every run's copy in WORKDIR whose newest entry is older than RETENTION_S, and the
    request folders left empty."""
    root = workdir.resolve()
    cutoff = (time.time() if now is None else now) - retention_s
    removal = Removal()
    for entry in _run_entries(root):
        if newest_mtime(entry) < cutoff:
            removal += _remove(entry, root)
    for request in _listing(root / RUNS):
        if request.is_dir() and not request.is_symlink():
            _rmdir(request)  # a run about to make its folder there makes the request's again
    return removal


_last_sweep: dict[Path, float] = {}
_sweep_lock = threading.Lock()


def maybe_sweep(workdir: Path, retention_s: float) -> Removal | None:
    """`sweep`, unless this process swept WORKDIR less than `SWEEP_EVERY_S` ago (None then):
    cheap enough for the start of every run, and a batch's parallel items sweep once."""
    root = workdir.resolve()
    now = time.monotonic()
    with _sweep_lock:
        last = _last_sweep.get(root)
        if last is not None and now - last < SWEEP_EVERY_S:
            return None
        _last_sweep[root] = now
    return sweep(root, retention_s)
