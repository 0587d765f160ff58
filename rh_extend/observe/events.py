"""Prefect events for what happens to a RunningHub task and its video.

- `rh-extend.task.submitted`: a new paid submit got its taskId. Payload: price preview,
  stage/upload/submit seconds.
- `rh-extend.task.succeeded`: the task finished, its output was downloaded and verified. Payload:
  cost, input/output/expected duration, queue/generation and stage seconds.
- `rh-extend.task.failed`: an `extend_video` run failed (a failed task, or any error once the run
  started). Payload: error type/code/message, seconds so far, price preview; `cause` is `crashed`
  when the run's process died holding the task (the task may still finish: the collector then
  archives it).
- `rh-extend.task.cancelled`: a run holding the task was cancelled and RunningHub was asked to
  cancel it. Payload: the cancel's outcome (cancelled, not_found), when, the flow run.
- `rh-extend.video.archived`: output, input, manifest and contact sheet are in S3. Payload: S3
  URIs, sha256, cost, durations, every stage's seconds.
- `rh-extend.video.reused`: the request was already archived, no RunningHub call. Payload: S3
  URIs, the cost paid back then.

The resource is the request, `rh-extend.request.<request key>`, labelled with
`rh-extend.request-key`, `rh-extend.task-id` and `rh-extend.model`; related resources name the
model (`rh-extend.model.<id>`, role `model`) and the task (`rh-extend.task.<taskId>`, role
`runninghub-task`). Prefect adds the flow run, flow, task run and tags itself.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from rh_extend.observe.common import best_effort, error_fields, run_logger, short

SUBMITTED = "rh-extend.task.submitted"
SUCCEEDED = "rh-extend.task.succeeded"
FAILED = "rh-extend.task.failed"
CANCELLED = "rh-extend.task.cancelled"
ARCHIVED = "rh-extend.video.archived"
REUSED = "rh-extend.video.reused"
ALL = (SUBMITTED, SUCCEEDED, FAILED, CANCELLED, ARCHIVED, REUSED)


def resource(
    request_key: str | None, model: str | None, task_id: str | None, flow_run_id: str | None = None
) -> dict[str, str]:
    if request_key:
        ident = f"rh-extend.request.{request_key}"
    else:  # failed before the request key was known (unreadable source, bad parameters)
        ident = f"rh-extend.request.unknown-{flow_run_id or 'run'}"
    labels = {
        "prefect.resource.id": ident,
        "prefect.resource.name": f"{model or '?'} request {short(request_key)}",
        "rh-extend.request-key": request_key or "",
        "rh-extend.model": model or "",
        "rh-extend.task-id": task_id or "",
    }
    return {name: value for name, value in labels.items() if value}


def related(model: str | None, task_id: str | None) -> list[dict[str, str]]:
    found = []
    if model:
        found.append(
            {
                "prefect.resource.id": f"rh-extend.model.{model}",
                "prefect.resource.role": "model",
                "prefect.resource.name": model,
            }
        )
    if task_id:
        found.append(
            {
                "prefect.resource.id": f"rh-extend.task.{task_id}",
                "prefect.resource.role": "runninghub-task",
                "prefect.resource.name": f"RunningHub task {task_id}",
            }
        )
    return found


def _emit(
    name: str,
    request_key: str | None,
    model: str | None,
    task_id: str | None,
    payload: dict[str, Any],
    flow_run_id: str | None = None,
) -> None:
    emit_event(
        name,
        resource=resource(request_key, model, task_id, flow_run_id),
        related=related(model, task_id),
        payload={"request_key": request_key, "task_id": task_id, "model": model, **payload},
    )
    run_logger().info("[%s task %s] event %s", short(request_key), task_id or "-", name)


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {stage: round(float(seconds), 3) for stage, seconds in timings.items()}


@best_effort
def task_submitted(
    request_key: str,
    model: str,
    task_id: str,
    price: dict[str, Any] | None,
    timings: dict[str, float],
) -> None:
    _emit(
        SUBMITTED,
        request_key,
        model,
        task_id,
        {
            "price_preview": price,
            "estimated_cost": (price or {}).get("estimated"),
            "currency": (price or {}).get("currency"),
            "timings_s": _rounded(timings),
        },
    )


def _durations(manifest: dict[str, Any]) -> dict[str, Any]:
    output = manifest.get("output", {})
    return {
        "input_duration_s": manifest.get("input", {}).get("duration_s"),
        "output_duration_s": output.get("duration_s"),
        "expected_duration_s": output.get("expected_duration_s"),
    }


@best_effort
def task_succeeded(manifest: dict[str, Any]) -> None:
    timings = manifest.get("timings_s", {})
    _emit(
        SUCCEEDED,
        manifest.get("request_key"),
        manifest.get("request", {}).get("model"),
        manifest.get("task_id"),
        {
            "cost": manifest.get("cost"),
            "price_preview": manifest.get("price_preview"),
            **_durations(manifest),
            "queued_s": timings.get("queued"),
            "generation_s": timings.get("generation"),
            "timings_s": _rounded(timings),
        },
    )


def _archive_payload(manifest: dict[str, Any]) -> dict[str, Any]:
    sheet = manifest.get("contact_sheet") or {}
    return {
        "output_uri": manifest.get("output", {}).get("uri"),
        "input_uri": manifest.get("input", {}).get("uri"),
        "manifest_uri": manifest.get("manifest_uri"),
        "contact_sheet_uri": sheet.get("uri"),
        "output_sha256": manifest.get("output", {}).get("sha256"),
        "price_preview": manifest.get("price_preview"),
        **_durations(manifest),
    }


@best_effort
def video_archived(manifest: dict[str, Any], archive_s: float | None) -> None:
    timings = dict(manifest.get("timings_s", {}))
    if archive_s is not None:
        timings["archive"] = archive_s
    _emit(
        ARCHIVED,
        manifest.get("request_key"),
        manifest.get("request", {}).get("model"),
        manifest.get("task_id"),
        {
            **_archive_payload(manifest),
            "cost": manifest.get("cost"),
            "timings_s": _rounded(timings),
        },
    )


@best_effort
def video_reused(manifest: dict[str, Any]) -> None:
    _emit(
        REUSED,
        manifest.get("request_key"),
        manifest.get("request", {}).get("model"),
        manifest.get("task_id"),
        {**_archive_payload(manifest), "cost": 0.0, "archived_cost": manifest.get("cost")},
    )


@best_effort
def task_failed(
    request_key: str | None,
    model: str | None,
    task_id: str | None,
    exc: BaseException | None,
    *,
    flow_run_id: str | None,
    flow_run_name: str | None,
    timings: dict[str, float],
    price: dict[str, Any] | None,
) -> None:
    error = error_fields(exc)
    _emit(
        FAILED,
        request_key,
        model,
        task_id,
        {
            "error": error,
            "cause": "crashed" if error.get("code") == "CRASHED" else "failed",
            "flow_run_name": flow_run_name,
            "price_preview": price,
            "cost": None,
            "timings_s": _rounded(timings),
        },
        flow_run_id=flow_run_id,
    )


@best_effort
def task_cancelled(
    request_key: str, task_id: str, outcome: str, at: str, *, flow_run_id: str
) -> None:
    """Emitted from the cancel hook, which may run outside the run (the `serve` runner): the
    flow run is named as a related resource here rather than left to Prefect."""
    emit_event(
        CANCELLED,
        resource=resource(request_key, None, task_id),
        related=[
            *related(None, task_id),
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
            },
        ],
        payload={
            "request_key": request_key,
            "task_id": task_id,
            "outcome": outcome,
            "cancelled_at": at,
            "flow_run_id": flow_run_id,
        },
    )
    run_logger().info("[%s task %s] event %s (%s)", short(request_key), task_id, CANCELLED, outcome)
