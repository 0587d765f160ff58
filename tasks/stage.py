"""Stage: bring the source to local disk, fingerprint it and check it against the model's limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rh_extend import stage_events, workdir
from rh_extend.clients import runninghub_client
from rh_extend.errors import MediaError, SourceError
from rh_extend.media import VideoInfo, probe, sha256_file
from rh_extend.observe.common import run_logger
from rh_extend.settings import Settings, load_settings
from rh_extend.storage import download_s3_uri, s3_client
from rh_extend.tasks.common import retry_on_transient
from runninghub import get_model

SourceKind = Literal["local", "https", "s3"]


@dataclass(frozen=True)
class StagedSource:
    source: str
    kind: SourceKind
    path: Path
    sha256: str
    info: VideoInfo


def source_kind(source: str) -> SourceKind:
    if source.startswith("s3://"):
        return "s3"
    if source.startswith(("https://", "http://")):
        return "https"
    return "local"


def _local_file(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(f"source={source!r}: no such file")
    if not path.is_file():
        raise SourceError(f"source={source!r}: not a regular file (a directory or device?)")
    try:
        with path.open("rb") as fh:
            if not fh.read(1):
                raise SourceError(f"source={source!r}: the file is empty")
    except PermissionError as exc:
        raise SourceError(f"source={source!r}: the file is not readable") from exc
    return path


def _fetch(source: str, kind: SourceKind, max_bytes: int) -> Path:
    settings = load_settings()
    # One folder per run: concurrent runs of the same source must not share a partial file.
    folder = workdir.staging_folder(settings.workdir)
    dest = folder / "source.bin"
    try:
        if kind == "s3":
            return download_s3_uri(s3_client(settings.s3_checksums), source, dest)
        with runninghub_client(settings) as client:
            return client.download(source, dest, max_bytes=max_bytes).path
    except BaseException:
        workdir.remove_if_empty(folder)  # a retry or rerun stages into a folder of its own
        raise


@task(
    name="stage",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_transient,
)
def stage_source(source: str, model_id: str) -> StagedSource:
    sweep_workdir(load_settings())
    spec = get_model(model_id)
    kind = source_kind(source)
    stage_events.emit("stage", "start", message=f"reading {source}")
    path = _local_file(source) if kind == "local" else _fetch(source, kind, spec.max_input_bytes)
    try:
        info = probe(path)
    except MediaError as exc:
        raise SourceError(f"source={source!r}: {exc}") from exc
    spec.check_input(container=info.container, size_bytes=info.size_bytes)
    digest = sha256_file(path)
    get_run_logger().info(
        "Staged %s: %s, %.2f s, %dx%d, %d bytes, sha256 %s",
        source,
        info.container,
        info.duration_s,
        info.width,
        info.height,
        info.size_bytes,
        digest,
    )
    stage_events.emit("stage", "done", message=f"{info.duration_s:.1f} s {info.container}")
    return StagedSource(source=source, kind=kind, path=path, sha256=digest, info=info)


def staged_copy(staged: StagedSource) -> Path | None:
    """The copy the stage step made of the source, or None: a local source is the user's file."""
    return None if staged.kind == "local" else staged.path


def sweep_workdir(settings: Settings) -> None:
    """The start of a run: copies that failed runs left longer than the retention ago go
    (`rh_extend.workdir`; at most once per few minutes per process). Never fails the run."""
    retention_h = settings.workdir_retention_h
    try:
        removal = workdir.maybe_sweep(settings.workdir, retention_h * 3600)
    except OSError as exc:
        run_logger().warning("workdir sweep of %s failed: %s", settings.workdir, exc)
        return
    if removal is not None and removal.folders:
        run_logger().info(
            "workdir sweep: removed %d run folder(s) untouched for %g h from %s: %s",
            len(removal.folders),
            retention_h,
            settings.workdir,
            removal.describe(),
        )


def remove_staged_copy(staged: StagedSource) -> None:
    """A run that needs its staged copy no longer (it found the request archived) removes it."""
    copy = staged_copy(staged)
    if copy is None:
        return
    settings = load_settings()
    try:
        removal = workdir.remove_run_copies(settings.workdir, [copy])
    except OSError as exc:
        run_logger().warning("could not remove the staged copy %s (%s): the sweep will", copy, exc)
        return
    if removal.files:
        run_logger().info("removed the staged copy of %s: %s", staged.source, removal.describe())
