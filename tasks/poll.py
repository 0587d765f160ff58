"""Poll: wait for the task to finish, keeping its status history for the manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rh_extend import observe, stage_events
from rh_extend.clients import runninghub_client
from rh_extend.settings import load_settings
from rh_extend.tasks.common import retry_on_transient
from runninghub import (
    PollTimeoutError,
    RunningHubClient,
    RunningHubError,
    TaskFailedError,
    TaskResponse,
)


@dataclass
class Finished:
    response: TaskResponse
    history: list[dict[str, str]] = field(default_factory=list)
    queued_s: float = 0.0
    running_s: float = 0.0


def _tracker(
    request_key: str, task_id: str, history: list[dict[str, str]], marks: dict[str, float]
) -> Callable[[TaskResponse], None]:
    logger = get_run_logger()
    started = time.monotonic()

    def on_update(response: TaskResponse) -> None:
        status = str(response.status)
        if not history or history[-1]["status"] != status:
            history.append(
                {"status": status, "at": datetime.now(UTC).isoformat(timespec="seconds")}
            )
            marks.setdefault(status, time.monotonic())
            logger.info("[%s task %s] status %s", request_key[:12], task_id, status)
        stage_events.emit(
            "poll",
            "advance",
            completed=time.monotonic() - started,
            message=status,
            data={"task_id": task_id},
        )

    return on_update


# Deadlines by taskId, set by a task run's first attempt: a Prefect retry (same process)
# continues the same deadline instead of starting a fresh one. Anchored at the first poll,
# not at the flow's call, so time Prefect spends scheduling the task does not count.
_deadlines: dict[str, float] = {}


def _remaining(task_id: str, timeout_s: float) -> float:
    deadline = _deadlines.setdefault(task_id, time.monotonic() + timeout_s)
    return max(deadline - time.monotonic(), 0.0)


def _gave_up(
    client: RunningHubClient, exc: PollTimeoutError, task_id: str, cancel: bool
) -> PollTimeoutError:
    """Best-effort cancel, and a message that says what happened and what to do next."""
    if cancel:
        try:
            cancelled = client.cancel(task_id) == "cancelled"
        except RunningHubError:
            cancelled = False
        what = (
            "cancel requested (RunningHub may still bill it)"
            if cancelled
            else "cancel did not go through; the task may still finish"
        )
        then = "rerun the same command to see how it ended, or --resubmit for a new paid task"
    else:
        what = "left running"
        then = "rerun the same command to resume polling it (nothing is submitted again)"
    return PollTimeoutError(
        f"task {task_id} was still {exc.last_status} at the polling deadline; {what}. To go on: "
        f"{then}.",
        task_id=task_id,
        last_status=exc.last_status,
    )


@task(
    name="poll",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_transient,
)
def wait_for_task(request_key: str, task_id: str, typical_s: int) -> Finished:
    """Poll until the task ends; one deadline (RH_EXTEND_POLL_TIMEOUT_S) across Prefect retries."""
    settings = load_settings()
    history: list[dict[str, str]] = []
    marks: dict[str, float] = {}
    begin = time.monotonic()
    stage_events.emit("poll", "start", total=float(typical_s), data={"task_id": task_id})
    watch = observe.ProgressArtifact(request_key, task_id, typical_s)
    with runninghub_client(settings) as client:
        try:
            final = client.wait(
                task_id,
                interval=settings.poll_interval_s,
                max_interval=settings.poll_max_interval_s,
                timeout=_remaining(task_id, settings.poll_timeout_s),
                on_update=watch.wrap(_tracker(request_key, task_id, history, marks)),
            )
        except PollTimeoutError as exc:
            _deadlines.pop(task_id, None)
            raise _gave_up(client, exc, task_id, settings.cancel_on_timeout) from exc
        except TaskFailedError:
            _deadlines.pop(task_id, None)
            raise
    _deadlines.pop(task_id, None)
    end = time.monotonic()
    running_from = marks.get("RUNNING", begin)
    stage_events.emit("poll", "done", message=str(final.status), data={"task_id": task_id})
    return Finished(
        response=final, history=history, queued_s=running_from - begin, running_s=end - running_from
    )
