"""Orphans: requests RunningHub was paid for that no live run will archive.

An orphan's submission record has a taskId and state `submitted`, its folder has no manifest, and
the run that wrote the record is over (Completed, Failed, Crashed, Cancelled, or gone from the
Prefect API) — or it has kept a non-final state for longer than any run polls (`stale_after_s`:
a process killed with SIGKILL never reports its end, and a run this process starts itself sends
no heartbeats for Prefect to notice). Records younger than `min_age_s` are left alone: their
run may be a moment from labelling or archiving them.

The collector (`flows/collect_orphans.py`) asks RunningHub about each orphan and archives,
records or leaves it. It never submits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rh_extend.storage import Archive
from rh_extend.submissions import RECORD

MANIFEST = "manifest.json"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

OwnerState = Callable[[str], str | None]  # flow run id → its state type, None when gone


@dataclass(frozen=True)
class Orphan:
    request_key: str
    task_id: str
    record: dict[str, Any]
    age_s: float
    owner_state: str | None  # the owning run's state type; None: unknown or gone


def _age_s(record: dict[str, Any], now: datetime) -> float:
    try:
        since = datetime.fromisoformat(str(record.get("since")))
    except ValueError:
        return float("inf")
    return (now - since).total_seconds()


def find_orphans(
    store: Archive,
    owner_state: OwnerState,
    *,
    min_age_s: float,
    stale_after_s: float,
    now: datetime | None = None,
) -> list[Orphan]:
    now = now or datetime.now(UTC)
    orphans = []
    for request_key, names in sorted(store.names_by_request().items()):
        if RECORD not in names or MANIFEST in names:
            continue
        record = store.read_json(request_key, RECORD) or {}
        if record.get("state") != "submitted" or not record.get("task_id"):
            continue  # an intent (outcome unknown), a cancel or an end already recorded
        age = _age_s(record, now)
        if age < min_age_s:
            continue
        owner = record.get("flow_run_id")
        state = owner_state(str(owner)) if owner else None
        if state is not None and state not in FINAL_STATES and age < stale_after_s:
            continue  # its run is alive and will archive it
        orphans.append(Orphan(request_key, str(record["task_id"]), record, age, state))
    return orphans


def prefect_owner_state(flow_run_id: str) -> str | None:
    """The flow run's state type from the Prefect API; None when the API doesn't know it."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
    except (ObjectNotFound, ValueError):
        return None
    return run.state.type.value if run.state else None
