"""A durable, race-safe record of every paid submit, kept in the archive bucket.

`submission.json` beside the archive is written create-only *before* the submit (the intent) and
updated with the taskId as soon as RunningHub answers. Whoever reads it later knows which of four
worlds it is in: nothing sent (no record), sent and answered (taskId: resume polling), sent and
the answer lost (intent only: stop, a task may exist and be billed), or sent and cancelled with
its run (state `cancelled`: a rerun stops rather than pay again). Each record names the flow run
that wrote it, so the collector can tell a live owner from a dead one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rh_extend.storage import Archive

RECORD = "submission.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SubmissionBook:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def uri(self, request_key: str) -> str:
        return self.archive.uri(request_key, RECORD)

    def read(self, request_key: str) -> dict[str, Any] | None:
        return self.archive.read_json(request_key, RECORD)

    def claim(
        self,
        request_key: str,
        model_id: str,
        *,
        overwrite: bool = False,
        flow_run_id: str | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record the intent to submit; False when another record already exists."""
        intent = {
            "request_key": request_key,
            "model": model_id,
            "state": "intent",
            "since": _now(),
            "flow_run_id": flow_run_id,
            "origin": dict(origin or {}),
        }
        return self.archive.put_json(request_key, RECORD, intent, create_only=not overwrite)

    def record_task(
        self,
        request_key: str,
        model_id: str,
        task_id: str,
        status: str,
        flow_run_id: str | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        record = {
            "request_key": request_key,
            "model": model_id,
            "state": "submitted",
            "task_id": task_id,
            "status_at_submit": status,
            "since": _now(),
            "flow_run_id": flow_run_id,
            "origin": dict(origin or {}),
        }
        self.archive.put_json(request_key, RECORD, record)

    def record_cancel(
        self, request_key: str, task_id: str, outcome: str, flow_run_id: str | None
    ) -> None:
        """The task was cancelled with its run (or RunningHub no longer knows it)."""
        record = self.read(request_key) or {"request_key": request_key}
        record.update(
            state="cancelled",
            task_id=task_id,
            cancel_outcome=outcome,
            cancelled_at=_now(),
            cancelled_by_flow_run=flow_run_id,
        )
        self.archive.put_json(request_key, RECORD, record)

    def release(self, request_key: str) -> None:
        """RunningHub refused the submit outright, so nothing was created: allow a new try."""
        self.archive.delete(request_key, RECORD)

    def record_end(self, request_key: str, status: str, reason: str, by: str) -> None:
        """The task ended without a result to archive (FAILED, CANCEL, unknown to RunningHub),
        as a collector found it: nothing is left to collect."""
        record = self.read(request_key) or {"request_key": request_key}
        record.update(state="ended", end_status=status, end_reason=reason, ended_seen_by=by)
        record["ended_seen_at"] = _now()
        self.archive.put_json(request_key, RECORD, record)
