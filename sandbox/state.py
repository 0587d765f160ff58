"""Everything the sandbox remembers, behind one lock: tasks, ledger, balance, files, faults.

The HTTP routes (`routes/`), the control API and `SandboxServer.state` all go through this object,
so tests can inspect or steer the server in-process or over HTTP and see the same thing.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .api_keys import fingerprint, without_keys
from .config import SandboxConfig
from .faults import FaultContext, FaultEngine
from .files import FileStore
from .lifecycle import TERMINAL, LifecycleWorker, Status, Task, TaskFaults, TaskIds
from .models_table import ModelSpec
from .processing import Processor
from .wire import money, task_body


@dataclass(frozen=True)
class Refusal:
    """A submit refused before a task exists (not billed)."""

    code: str
    message: str


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class SandboxState:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.lock = threading.RLock()
        self.tasks: dict[str, Task] = {}
        self.billed: list[dict[str, Any]] = []
        self.submits_received = 0
        self.balance = self._configured_balance()
        self.faults = FaultEngine()
        self._owns_dir = self.config.data_dir is None
        root = (
            Path(tempfile.mkdtemp(prefix="rh-sandbox-"))
            if self.config.data_dir is None
            else Path(self.config.data_dir)
        )
        self.files = FileStore(root)
        self.ids = TaskIds()
        self.processor = Processor(self.config, self.files, self.faults)
        self.worker = LifecycleWorker(
            self.config, self.lock, self.tasks, self.files, self.processor
        )
        # The address the server is bound to, set by whoever runs it (SandboxServer, CLI).
        self.bound_url: str | None = None

    # -- lifecycle
    def start(self) -> None:
        self.files.ensure_dirs()
        self.worker.start()

    def close(self) -> None:
        self.worker.stop()
        if self._owns_dir:
            shutil.rmtree(self.files.root, ignore_errors=True)

    # -- links
    def link_base(self, server: tuple[str, int] | None = None) -> str:
        """Base URL of every link: configured public_url, else the bound address, else the
        listening socket's address (`server`, from the ASGI scope) — never the Host header."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        if self.bound_url:
            return self.bound_url.rstrip("/")
        host, port = server if server else ("127.0.0.1", 80)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    # -- submits
    def count_submit(self) -> None:
        with self.lock:
            self.submits_received += 1

    def _configured_balance(self) -> Decimal | None:
        value = self.config.balance
        return None if value is None else Decimal(str(value))

    def active_counts(self, key_fp: str) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        with self.lock:
            for task in self.tasks.values():
                if task.key_fp == key_fp:
                    counts[task.status] += 1
        return counts

    def accept(
        self,
        key: str,
        spec: ModelSpec,
        path: str,
        params: dict[str, Any],
        body: Mapping[str, Any],
    ) -> Task | Refusal:
        """Concurrency and balance checks, then create, fault-tag and bill the task."""
        key_fp = fingerprint(key)
        price = spec.price(params)
        with self.lock:
            active = sum(1 for t in self.worker.active() if t.key_fp == key_fp)
            if active >= self.config.concurrency_limit:
                code = str(self.config.concurrency_code)
                text = "TASK_QUEUE_MAXED" if code == "421" else "concurrent task limit reached"
                return Refusal(code, text)
            if self.balance is not None and self.balance < price:
                return Refusal("812", "insufficient balance")
            task = Task(
                task_id=self.ids.new(),
                key_fp=key_fp,
                model=spec,
                path=path,
                params=dict(params),
                body=without_keys(body),
                price=price,
                faults=TaskFaults(),
            )
            self._attach_task_faults(task)
            self.worker.enter_first_phase(task, time.monotonic())
            self.tasks[task.task_id] = task
            if self.balance is not None:
                self.balance -= price
            self.billed.append(
                {
                    "taskId": task.task_id,
                    "model": spec.key,
                    "path": path,
                    "body": dict(task.body),
                    "key_fingerprint": key_fp,
                    "price": money(price),
                    "billed_at": _iso(time.time()),
                }
            )
            return task

    def _attach_task_faults(self, task: Task) -> None:
        ctx = FaultContext(task.prompt, task.task_id, (task.model.key, *task.model.paths))
        for rule in self.faults.take_all("task", ctx):
            task.faults.rule_ids.append(rule.id)
            p = rule.params
            if rule.kind == "fail_task":
                task.faults.fail = {
                    "code": str(p.get("code", "1015")),
                    "message": str(p.get("message", "video generation failed")),
                    "node_name": str(p.get("node_name", "VideoExtend")),
                }
            elif rule.kind == "error_while_running":
                task.faults.running_error = {
                    "code": str(p.get("code", "1011")),
                    "message": str(p.get("message", "upstream service error")),
                }
            elif rule.kind == "slow":
                task.faults.extra_run_seconds += float(p.get("seconds", 1.0))

    # -- tasks
    def find(self, task_id: str, key_fp: str | None = None) -> Task | None:
        """A task by id; with key_fp, only if that key owns it (others get 'not found')."""
        with self.lock:
            task = self.tasks.get(task_id)
        if task is None or (key_fp is not None and task.key_fp != key_fp):
            return None
        return task

    def render(self, task: Task, link_base: str) -> dict[str, Any]:
        with self.lock:
            return task_body(task, link_base)

    def cancel(self, task_id: str, key_fp: str) -> str:
        """CANCEL a running or queued task (no refund, no result): `cancelled`, `not_found`
        (unknown to this key) or `ended` (already terminal: RunningHub's 817)."""
        with self.lock:
            task = self.find(task_id, key_fp)
            if task is None:
                return "not_found"
            if task.terminal:
                return "ended"
            task.move(Status.CANCEL)
            return "cancelled"

    # -- control API
    def ledger(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e, body=dict(e["body"])) for e in self.billed]

    def ledger_view(self) -> dict[str, Any]:
        with self.lock:
            return {"billed": self.ledger(), "submits_received": self.submits_received}

    def reset(self) -> None:
        """Forget tasks, ledger and faults; restore the configured balance. Files stay."""
        with self.lock:
            self.tasks.clear()
            self.worker.forget()
            self.billed.clear()
            self.submits_received = 0
            self.balance = self._configured_balance()
        self.faults.clear()

    def update_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(changes)
            if "balance" in changes:
                self.balance = self._configured_balance()
            return self.config_view()

    def config_view(self) -> dict[str, Any]:
        view = self.config.public_view()
        view["remaining_balance"] = None if self.balance is None else money(self.balance)
        return view

    def task_view(self, task_id: str, link_base: str | None = None) -> dict[str, Any] | None:
        """Internal view of a task for tests: history, input, output, lengths, faults."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                return None
            outcome = task.outcome
            ext = outcome.extend if outcome else None
            return {
                "taskId": task.task_id,
                "model": task.model.key,
                "path": task.path,
                "status": task.status.value,
                "terminal": task.status in TERMINAL,
                "key_fingerprint": task.key_fp,
                "params": dict(task.params),
                "body": dict(task.body),
                "price": money(task.price),
                "history": [{"status": s, "at": at, "at_iso": _iso(at)} for s, at in task.history],
                "input_url": task.params.get("videoUrl"),
                "input_path": str(outcome.input_path) if outcome and outcome.input_path else None,
                "output_path": str(task.result.path) if task.result else None,
                "output_url": task.result.url(link_base) if task.result and link_base else None,
                "fps": str(ext.fps) if ext else None,
                "input_frames": ext.input_frames if ext else None,
                "added_frames": ext.added_frames if ext else None,
                "input_seconds": ext.input_seconds if ext else None,
                "added_seconds": ext.added_seconds if ext else None,
                "output_seconds": ext.output_seconds if ext else None,
                "error_code": task.error_code,
                "error_message": task.error_message,
                "failed_reason": dict(task.failed_reason),
                "fault_rule_ids": list(task.faults.rule_ids),
            }

    def task_ids(self) -> list[str]:
        with self.lock:
            return list(self.tasks)
