"""Download: stream the result to disk and prove it is the video we expect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rh_extend import stage_events, workdir
from rh_extend.clients import runninghub_client
from rh_extend.errors import ArchiveMismatchError, MediaError
from rh_extend.media import VideoInfo, verify_decodes_to_end
from rh_extend.settings import load_settings
from rh_extend.tasks.common import retry_on_transient
from runninghub import TaskResponse


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    info: VideoInfo
    extension: str


def _extension(output_type: str | None) -> str:
    """The local name never comes from the URL; the extension only from a short, safe type."""
    candidate = (output_type or "").lower().lstrip(".")
    return candidate if re.fullmatch(r"[a-z0-9]{1,5}", candidate) else "mp4"


@task(
    name="download",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_transient,
)
def download_output(request_key: str, task_id: str, response: TaskResponse) -> Downloaded:
    settings = load_settings()
    output = response.results[0]
    if not output.url:
        raise ArchiveMismatchError(f"task {task_id} succeeded but its result has no URL")
    extension = _extension(output.output_type)
    folder = workdir.download_folder(settings.workdir, request_key)
    stage_events.emit("download", "start")
    try:
        with runninghub_client(settings) as client:
            fetched = client.download(
                output.url,
                folder / f"output.{extension}",
                max_bytes=settings.max_output_bytes,
                on_progress=lambda done, total: stage_events.emit(
                    "download", "advance", completed=done, total=total
                ),
            )
    except BaseException:
        workdir.remove_if_empty(folder)  # a retry or rerun downloads into a folder of its own
        raise
    try:
        info = verify_decodes_to_end(fetched.path)
    except MediaError as exc:
        raise ArchiveMismatchError(
            f"task {task_id} returned a file that is not a video: {exc}"
        ) from exc
    get_run_logger().info(
        "[%s task %s] downloaded %d bytes, %.2f s, sha256 %s%s",
        request_key[:12],
        task_id,
        fetched.size,
        info.duration_s,
        fetched.sha256,
        f" after {fetched.resumed} resume(s)" if fetched.resumed else "",
    )
    stage_events.emit("download", "done", completed=fetched.size, total=fetched.size)
    return Downloaded(
        path=fetched.path, size=fetched.size, sha256=fetched.sha256, info=info, extension=extension
    )
