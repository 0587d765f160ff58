"""Archive: output, input and manifest in S3; the manifest is written last, as the done-marker.
Then the run's local copies (its download, its staged copy) are removed: the archive has them."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rh_extend import observe, stage_events, workdir
from rh_extend.clients import archive
from rh_extend.result import ExtendResult
from rh_extend.settings import Settings, load_settings
from rh_extend.storage import Archive
from rh_extend.tasks.common import retry_on_storage
from rh_extend.tasks.download import Downloaded
from rh_extend.tasks.stage import StagedSource, staged_copy

MANIFEST = "manifest.json"
T = TypeVar("T")


def _in_context(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kw: Any) -> Future[T]:
    """FN on the pool, in this task's context (run logger, Prefect settings)."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kw)


def result_from_manifest(
    manifest: dict[str, Any], manifest_uri: str, presigned: str | None, reused: bool
) -> ExtendResult:
    output = manifest["output"]
    return ExtendResult(
        status="succeeded",
        request_key=manifest["request_key"],
        task_id=manifest["task_id"],
        model=manifest["request"]["model"],
        output_uri=output["uri"],
        manifest_uri=manifest_uri,
        output_sha256=output["sha256"],
        output_duration_s=output["duration_s"],
        cost=manifest.get("cost"),
        presigned_url=presigned,
        reused_archive=reused,
    )


def archived_result(
    store: Archive, request_key: str, manifest: dict[str, Any] | None
) -> ExtendResult | None:
    """The result an earlier run archived for this request (its MANIFEST, as read), or None."""
    if manifest is None:
        return None
    get_run_logger().info(
        "[%s] already archived: %s (no RunningHub call made)",
        request_key[:12],
        manifest["output"]["uri"],
    )
    name = manifest["output"]["uri"].rsplit("/", 1)[-1]
    presigned = store.presign(request_key, name, load_settings().presign_ttl_s)
    observe.publish_run(store, manifest, reused=True)
    return result_from_manifest(manifest, store.uri(request_key, MANIFEST), presigned, reused=True)


@task(
    name="archive",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_storage,
)
def archive_run(
    request_key: str, staged: StagedSource | None, downloaded: Downloaded, manifest: dict[str, Any]
) -> ExtendResult:
    """Output, input (when STAGED: the collector may not be able to read the source again),
    contact sheet, then the manifest; then the local copies go."""
    settings = load_settings()
    store = archive(settings)
    input_bytes = staged.info.size_bytes if staged else 0
    stage_events.emit("archive", "start", total=float(downloaded.size + input_bytes))
    output_name = f"output.{downloaded.extension}"
    # the two uploads and the contact sheet are independent: side by side, then the manifest
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="rh-extend-archive") as pool:
        output = _in_context(
            pool,
            store.store_file,
            request_key,
            output_name,
            downloaded.path,
            sha256=downloaded.sha256,
            content_type="video/mp4",
        )
        source = None
        if staged is not None:
            source = _in_context(
                pool,
                store.store_file,
                request_key,
                f"input.{staged.info.container}",
                staged.path,
                sha256=staged.sha256,
                content_type="video/mp4",
            )
        sheet = _in_context(
            pool,
            observe.store_contact_sheet,
            store,
            request_key,
            downloaded.path,
            float(manifest["input"].get("duration_s") or 0.0),
            manifest,
        )
        manifest["output"]["uri"] = output.result().uri
        manifest["input"]["uri"] = source.result().uri if source else None
        sheet.result()
    if not store.put_json(request_key, MANIFEST, manifest, create_only=True):
        get_run_logger().warning("[%s] manifest.json already existed: kept", request_key[:12])
    get_run_logger().info(
        "[%s task %s] archived %s", request_key[:12], manifest["task_id"], manifest["output"]["uri"]
    )
    presigned = store.presign(request_key, output_name, settings.presign_ttl_s)
    # last: nothing after this may fail the task, whose retry would need the files
    removed = remove_local_copies(settings, staged, downloaded, manifest)
    observe.publish_run(store, manifest, removed=removed)
    stage_events.emit("archive", "done", message=f"{output_name}, input, manifest.json")
    return result_from_manifest(manifest, store.uri(request_key, MANIFEST), presigned, reused=False)


def remove_local_copies(
    settings: Settings,
    staged: StagedSource | None,
    downloaded: Downloaded,
    manifest: dict[str, Any],
) -> workdir.Removal | None:
    """The archived run's download folder and staged copy, removed (never a local source: that
    is the user's own file); what went is logged and returned for the report."""
    tag = f"[{manifest['request_key'][:12]} task {manifest['task_id']}]"
    copies = [downloaded.path, staged_copy(staged) if staged else None]
    try:
        removed = workdir.remove_run_copies(settings.workdir, copies)
    except OSError as exc:
        get_run_logger().warning(
            "%s could not remove the local copies (%s): the sweep will", tag, exc
        )
        return None
    get_run_logger().info(
        "%s removed the local copies from %s: %s (%s)",
        tag,
        settings.workdir,
        removed.describe(),
        ", ".join(removed.folders) or "none left",
    )
    return removed
