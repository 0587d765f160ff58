"""A RunningHub task's life in the sandbox: its record, its id, and the worker that moves it on.

CREATE -> QUEUED (queue_seconds) -> RUNNING (run_seconds) -> SUCCESS | FAILED, or CANCEL.
Time moves on its own (a worker thread), not when a client queries, so a client that polls
slowly sees the same history as one that polls fast. During RUNNING a processing job (fetch the
input over HTTP, re-encode and extend it) runs in a thread pool; the task finishes when both the
configured run time is over and the job is done, or at once when the job fails.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from .config import SandboxConfig
from .files import FileStore, StoredFile
from .models_table import ModelSpec
from .video import ExtendResult

TASK_ID_BASE = 2013508786110730241
_log = logging.getLogger("sandbox")


class Status(StrEnum):
    CREATE = "CREATE"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCEL = "CANCEL"


TERMINAL = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCEL})


@dataclass
class TaskFaults:
    """Faults attached to a task when it was accepted (see faults.py)."""

    fail: dict[str, Any] | None = None  # code, message, node_name
    running_error: dict[str, Any] | None = None  # code, message
    extra_run_seconds: float = 0.0
    rule_ids: list[int] = field(default_factory=list)


@dataclass
class JobOutcome:
    """What a processing job produced: an output file, or an error for the task."""

    output_path: Path | None = None
    extend: ExtendResult | None = None
    input_path: Path | None = None
    error_code: str = ""
    error_message: str = ""
    failed_reason: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.output_path is not None and not self.error_code


@dataclass
class Task:
    task_id: str
    key_fp: str
    model: ModelSpec
    path: str
    params: dict[str, Any]
    body: dict[str, Any]  # as submitted, keys removed
    price: Decimal
    faults: TaskFaults
    status: Status = Status.CREATE
    history: list[tuple[str, float]] = field(default_factory=list)
    deadline: float = 0.0  # monotonic end of the current phase
    running_since: float | None = None  # wall clock
    finished_at: float | None = None  # wall clock
    error_code: str = ""
    error_message: str = ""
    failed_reason: dict[str, Any] = field(default_factory=dict)
    result: StoredFile | None = None
    outcome: JobOutcome | None = None
    job: Future[JobOutcome] | None = None

    @property
    def prompt(self) -> str | None:
        value = self.params.get("prompt")
        return value if isinstance(value, str) else None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def move(self, status: Status) -> None:
        self.status = status
        now = time.time()
        self.history.append((status.value, now))
        if status is Status.RUNNING:
            self.running_since = now
        if status in TERMINAL:
            self.finished_at = now

    def fail(self, code: str, message: str, reason: dict[str, Any] | None = None) -> None:
        self.error_code, self.error_message = code, message
        self.failed_reason = dict(reason or {})
        self.move(Status.FAILED)

    def cost_seconds(self) -> int:
        """Seconds spent RUNNING so far (what usage.taskCostTime reports)."""
        if self.running_since is None:
            return 0
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0, round(end - self.running_since))


class TaskIds:
    """19-digit task ids: a counter from RunningHub's range plus random strides."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = TASK_ID_BASE + random.randint(0, 10**9)

    def new(self) -> str:
        with self._lock:
            self._next += random.randint(1, 997)
            return str(self._next)


JobStarter = Callable[[Task], "Future[JobOutcome]"]


class LifecycleWorker:
    """A daemon thread that advances every task's status on the clock.

    `lock` is the state lock guarding `tasks`; jobs run in a thread pool so one slow encode
    doesn't hold back the other tasks' transitions. A tick visits only the tasks not yet ended
    (`active`): the sandbox keeps every task it ever accepted, and visiting them all 100 times a
    second took a tenth of a core after a benchmark's few hundred tasks.
    """

    TICK = 0.01

    def __init__(
        self,
        config: SandboxConfig,
        lock: threading.RLock,
        tasks: dict[str, Task],
        files: FileStore,
        run_job: Callable[[Task], JobOutcome],
    ) -> None:
        self._config = config
        self._lock = lock
        self._tasks = tasks
        self._active: dict[str, Task] = {}  # accepted and not yet seen terminal by a tick
        self._files = files
        self._run_job = run_job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self._config.processing_workers), thread_name_prefix="sandbox-job"
        )
        self._thread = threading.Thread(target=self._loop, name="sandbox-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _loop(self) -> None:
        pause = self.TICK
        while not self._stop.wait(pause):
            try:
                pause = self.tick(time.monotonic())
            except Exception:  # keep the clock running whatever one task does
                _log.exception("lifecycle tick failed")
                pause = self.TICK

    def tick(self, now: float) -> float:
        """One pass over the non-terminal tasks; returns how long to wait for the next: up to
        the nearest phase end, at most TICK (a task ends on time, not up to a tick late)."""
        pause = self.TICK
        with self._lock:
            for task in list(self._active.values()):
                if not task.terminal:
                    self._advance(task, now)
                if task.terminal:
                    del self._active[task.task_id]
                elif task.deadline > now:
                    pause = min(pause, task.deadline - now)
        return pause

    def active(self) -> list[Task]:
        """The tasks not yet ended (a few may have ended since the last tick)."""
        with self._lock:
            return [task for task in self._active.values() if not task.terminal]

    def forget(self) -> None:
        with self._lock:
            self._active.clear()

    def enter_first_phase(self, task: Task, now: float) -> None:
        """Called at acceptance (under the lock): CREATE, then QUEUED unless create_seconds."""
        self._active[task.task_id] = task
        task.move(Status.CREATE)
        create = self._config.scaled(self._config.create_seconds)
        if create > 0:
            task.deadline = now + create
        else:
            self._enter_queue(task, now)

    def _enter_queue(self, task: Task, now: float) -> None:
        task.move(Status.QUEUED)
        task.deadline = now + self._config.scaled(self._config.queue_seconds)

    def _enter_running(self, task: Task, now: float) -> None:
        task.move(Status.RUNNING)
        run = self._config.run_seconds + task.faults.extra_run_seconds
        task.deadline = now + self._config.scaled(run)
        if task.faults.fail is None and self._pool is not None:
            task.job = self._pool.submit(self._run_job, task)
        if task.faults.running_error is not None:
            err = task.faults.running_error
            task.error_code, task.error_message = str(err["code"]), str(err["message"])

    def _advance(self, task: Task, now: float) -> None:
        if task.status is Status.CREATE and now >= task.deadline:
            self._enter_queue(task, now)
        if task.status is Status.QUEUED and now >= task.deadline:
            self._enter_running(task, now)
        if task.status is Status.RUNNING:
            self._advance_running(task, now)

    def _advance_running(self, task: Task, now: float) -> None:
        outcome = self._job_outcome(task)
        if outcome is not None and not outcome.ok:
            task.outcome = outcome
            task.fail(outcome.error_code, outcome.error_message, outcome.failed_reason)
            return
        if now < task.deadline:
            return
        if task.faults.fail is not None:
            fail = task.faults.fail
            reason = {
                "exception_type": "GenerationError",
                "exception_message": str(fail["message"]),
                "node_name": str(fail["node_name"]),
            }
            task.fail(str(fail["code"]), str(fail["message"]), reason)
        elif task.faults.running_error is not None:
            err = task.faults.running_error
            task.fail(str(err["code"]), str(err["message"]), {"exception_message": err["message"]})
        elif outcome is not None:  # job done: publish the output
            task.outcome = outcome
            assert outcome.output_path is not None
            name = f"{task.model.key}-{task.task_id}.mp4"
            task.result = self._files.add(outcome.output_path, name, "result", task.task_id)
            task.move(Status.SUCCESS)
        # else: the job is still encoding; stay RUNNING until it is done

    @staticmethod
    def _job_outcome(task: Task) -> JobOutcome | None:
        if task.job is None or not task.job.done():
            return None
        try:
            return task.job.result()
        except Exception as exc:  # a bug in the job itself: report, don't hang
            return JobOutcome(
                error_code="1005",
                error_message=f"internal error: {exc}",
                failed_reason={
                    "exception_type": type(exc).__name__,
                    "exception_message": str(exc),
                    "node_name": "Sandbox",
                },
            )
