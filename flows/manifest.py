"""What an archived request's `manifest.json` says, built the same way by the run that submitted it
and by the collector that archives an orphaned result (`flows/collect_orphans.py`).

The request's *origin* — the request, its normalized parameters, the input's facts and the
expected output length — is known before the submit and kept in the submission record, so a
collector on another machine can write the manifest the run would have written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rh_extend import __version__
from rh_extend.request import ExtendRequest
from rh_extend.tasks import Downloaded, Finished, StagedSource
from runninghub import ModelSpec


def origin_of(
    request: ExtendRequest,
    spec: ModelSpec,
    params: dict[str, object],
    staged: StagedSource,
    expected_s: float,
) -> dict[str, Any]:
    return {
        "request": {
            "model": spec.id,
            "endpoint": spec.path,
            "params": params,
            "source": staged.source,
            "take": request.take,
        },
        "input": {
            "sha256": staged.sha256,
            "size_bytes": staged.info.size_bytes,
            "duration_s": staged.info.duration_s,
            "container": staged.info.container,
            "width": staged.info.width,
            "height": staged.info.height,
        },
        "expected_duration_s": round(expected_s, 3),
    }


def build_manifest(
    key: str,
    origin: dict[str, Any],
    finished: Finished,
    downloaded: Downloaded,
    timings: dict[str, float],
) -> dict[str, Any]:
    usage = finished.response.usage
    cost = usage.cost if usage else None
    return {
        "schema": 1,
        "request_key": key,
        "task_id": finished.response.task_id,
        "request": dict(origin["request"]),
        "input": dict(origin["input"]),
        "output": {
            "sha256": downloaded.sha256,
            "size_bytes": downloaded.size,
            "duration_s": round(downloaded.info.duration_s, 3),
            "expected_duration_s": origin["expected_duration_s"],
            "width": downloaded.info.width,
            "height": downloaded.info.height,
        },
        "status_history": finished.history,
        "usage": usage.model_dump(mode="json") if usage else None,
        "cost": float(cost) if cost is not None else None,
        "timings_s": {
            **timings,
            "queued": round(finished.queued_s, 3),
            "generation": round(finished.running_s, 3),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rh_extend_version": __version__,
    }
