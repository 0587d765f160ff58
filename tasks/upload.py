"""Upload: turn the staged source into a URL RunningHub can fetch, then ask what it will cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rh_extend import stage_events
from rh_extend.clients import archive, runninghub_client
from rh_extend.settings import load_settings
from rh_extend.storage import presign_s3_uri, s3_client
from rh_extend.tasks.common import retry_on_transient
from rh_extend.tasks.price import preview_price
from rh_extend.tasks.stage import StagedSource

INPUT_NAME = "input.{ext}"


def _content_type(container: str) -> str:
    return "video/quicktime" if container == "mov" else "video/mp4"


@task(
    name="upload",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_transient,
)
def upload_and_price(
    staged: StagedSource,
    request_key: str,
    model_id: str,
    params: Mapping[str, object],
    max_cost: float | None,
) -> tuple[str, dict[str, Any] | None]:
    """The video's URL for RunningHub and its price preview (refused over `max_cost`).

    One task for both: each is a quick, unpaid, retryable call, and every task run costs
    the client and the Prefect server ≈ 30 ms of CPU (see docs/benchmarks.md).
    """
    video_url = upload_source(staged, request_key)
    return video_url, preview_price(request_key, model_id, video_url, params, max_cost)


def upload_source(staged: StagedSource, request_key: str) -> str:
    """https sources pass through, s3:// sources are presigned, local files are uploaded."""
    settings = load_settings()
    logger = get_run_logger()
    if staged.kind == "https":
        return staged.source
    if staged.kind == "s3":
        return presign_s3_uri(s3_client(settings.s3_checksums), staged.source, 86400)
    size = staged.info.size_bytes
    stage_events.emit("upload", "start", total=size)
    if settings.upload_via == "s3":
        store = archive(settings)
        name = INPUT_NAME.format(ext=staged.info.container)
        store.store_file(
            request_key,
            name,
            staged.path,
            sha256=staged.sha256,
            content_type=_content_type(staged.info.container),
        )
        url = store.presign(request_key, name, 86400)
    else:
        with runninghub_client(settings) as client:
            uploaded = client.upload(
                staged.path,
                on_progress=lambda sent, total: stage_events.emit(
                    "upload", "advance", completed=sent, total=total
                ),
            )
        url = uploaded.download_url
    logger.info("Uploaded %s (%d bytes) via %s", staged.path.name, size, settings.upload_via)
    stage_events.emit("upload", "done", completed=size, total=size)
    return url
