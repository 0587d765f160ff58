"""One Prefect global concurrency limit per RunningHub key, sized from the key's own limit.

RunningHub refuses submits beyond a key's concurrent-task limit (1520/421). Holding a Prefect slot
from submit to the end of polling makes extra runs queue locally, visibly in the Prefect UI,
instead of storming RunningHub and waiting in client back-off loops.

In front of the Prefect limit sits a gate of the same size inside the process: runs of one
process (a batch's items) hand a slot to each other the moment it is free, instead of sleeping
the Retry-After of Prefect's 423 answer (about one average slot occupancy, with jitter) while
RunningHub sits idle. The Prefect limit still bounds all processes together.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from rh_extend.settings import Settings
from runninghub import RunningHubError

DEFAULT_SLOTS = 3
LEASE_S = 60.0
logger = logging.getLogger("rh_extend.limits")
_ensured: dict[str, int] = {}  # limit name → its slots, as read or created
_gates: dict[str, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


class SlotWaitTimeoutError(TimeoutError):
    """No RunningHub slot came free within RH_EXTEND_CONCURRENCY_WAIT_S."""


def limit_name(settings: Settings) -> str:
    """Named after a short hash of the key: distinct per key, and reveals nothing of it."""
    digest = hashlib.sha256(settings.api_key().encode()).hexdigest()[:10]
    return f"runninghub-key-{digest}"


def _key_slots(settings: Settings) -> int:
    if settings.concurrency_limit:
        return settings.concurrency_limit
    from rh_extend.tasks.common import runninghub_client

    try:
        with runninghub_client(settings) as client:
            return max(1, client.queue_status().concurrent_limit or DEFAULT_SLOTS)
    except RunningHubError as exc:
        logger.warning("queue status unavailable (%s); assuming %d slots", exc, DEFAULT_SLOTS)
        return DEFAULT_SLOTS


def ensure_limit(settings: Settings) -> tuple[str, int]:
    """Create the limit once; a limit someone already tuned in the UI or CLI is left alone.

    Returns its name and size, read once per process (a size changed later in the UI applies
    to the Prefect limit at once and to this process's gate from its next start).
    """
    name = limit_name(settings)
    if name in _ensured:
        return name, _ensured[name]
    with get_client(sync_client=True) as client:
        try:
            slots = client.read_global_concurrency_limit_by_name(name).limit
        except ObjectNotFound:
            slots = _key_slots(settings)
            # another process (a second worker, a parallel run) may create it first
            with suppress(ObjectAlreadyExists):
                client.upsert_global_concurrency_limit_by_name(name, slots)
    _ensured[name] = slots
    return name, slots


@contextmanager
def _process_gate(name: str, slots: int, timeout_s: float) -> Iterator[None]:
    with _gates_lock:
        gate = _gates.setdefault(name, threading.BoundedSemaphore(max(1, slots)))
    if not gate.acquire(timeout=timeout_s):
        raise SlotWaitTimeoutError(
            f"no RunningHub slot came free within {timeout_s:.0f} s ({slots} in use by this "
            f"process, limit {name}); raise RH_EXTEND_CONCURRENCY_WAIT_S or the limit's size"
        )
    try:
        yield
    finally:
        gate.release()


@contextmanager
def runninghub_slot(settings: Settings) -> Iterator[None]:
    """Hold one of the key's slots; waits (bounded) when all are taken.

    RH_EXTEND_CONCURRENCY_LIMIT=0 turns the Prefect-side limit off: runs then rely on the
    client's bounded waiting when RunningHub answers 1520/421.
    """
    if settings.concurrency_limit == 0:
        yield
        return
    name, slots = ensure_limit(settings)
    started = time.monotonic()
    with _process_gate(name, slots, settings.concurrency_wait_s):
        left = max(0.0, settings.concurrency_wait_s - (time.monotonic() - started))
        with _prefect_slot(name, left):
            yield


@contextmanager
def _prefect_slot(name: str, timeout_s: float) -> Iterator[None]:
    # A short lease: Prefect renews it while this process lives, and a killed run's slot comes
    # back within a minute instead of blocking its own resume for the default five.
    with concurrency(
        name,
        occupy=1,
        timeout_seconds=timeout_s,
        strict=True,
        lease_duration=LEASE_S,
    ):
        yield
