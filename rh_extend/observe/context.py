"""What a running chain has learned so far, for whatever reports its end.

A flow's `on_failure` hook gets the flow run and its state, not the request key or the taskId the
flow computed. The chain notes those here as it goes (`track_run`, `submitted`), keyed by its
flow run id, so that the hook (same process, same run) can name them. A batch item that runs the
chain inline (one task run inside the batch's flow run) opens its own `run_scope`, so that items
sharing the batch's flow run don't share facts. Bounded: the oldest entries go when many runs pass
through one long-lived process (a worker, `serve`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED = 512


@dataclass
class RunFacts:
    request_key: str | None = None
    model: str | None = None
    task_id: str | None = None
    price: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    progress: Any = None  # the ProgressArtifact of the run's task, once polling began


_facts: OrderedDict[str, RunFacts] = OrderedDict()
_lock = threading.Lock()
_scope: ContextVar[str | None] = ContextVar("rh_extend_run_scope", default=None)


@contextmanager
def run_scope(scope_id: str) -> Iterator[RunFacts]:
    """Facts noted inside this block belong to SCOPE_ID (a batch item), not to the flow run;
    they are dropped when it ends."""
    token = _scope.set(scope_id)
    try:
        yield current_facts()
    finally:
        _scope.reset(token)
        forget(scope_id)


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
    run_id = _scope.get() or current_flow_run_id()
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
