"""What a running `extend_video` has learned so far, for the hooks that report its end.

A flow's `on_failure` hook gets the flow run and its state, not the request key or the taskId the
flow computed. The flow notes those here as it goes (`track_run`, `note_submitted`), keyed by its
flow run id, so that the hook (same process, same run) can name them. Bounded: the oldest entries
go when many runs pass through one long-lived process (a worker, `serve`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

MAX_TRACKED = 512


@dataclass
class RunFacts:
    request_key: str | None = None
    model: str | None = None
    task_id: str | None = None
    price: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    progress_artifact_id: UUID | None = None


_facts: OrderedDict[str, RunFacts] = OrderedDict()
_lock = threading.Lock()


def current_flow_run_id() -> str | None:
    """The flow run this code runs in: from the flow's context, or a task's."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id)
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        return str(task_ctx.task_run.flow_run_id)
    return None


def facts_for(flow_run_id: str | None) -> RunFacts | None:
    if flow_run_id is None:
        return None
    with _lock:
        return _facts.get(flow_run_id)


def current_facts() -> RunFacts:
    """This run's facts, created on first use (a throwaway object outside any run)."""
    run_id = current_flow_run_id()
    if run_id is None:
        return RunFacts()
    with _lock:
        found = _facts.get(run_id)
        if found is None:
            found = _facts[run_id] = RunFacts()
            while len(_facts) > MAX_TRACKED:
                _facts.popitem(last=False)
        return found


def forget(flow_run_id: str) -> None:
    with _lock:
        _facts.pop(flow_run_id, None)
