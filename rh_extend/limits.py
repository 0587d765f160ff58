"""One Prefect global concurrency limit per RunningHub key, sized from the key's own limit.

RunningHub refuses submits beyond a key's concurrent-task limit (1520/421). Holding a Prefect slot
from submit to the end of polling makes extra runs queue locally, visibly in the Prefect UI,
instead of storming RunningHub and waiting in client back-off loops.
"""

from __future__ import annotations

import hashlib
import logging
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
_ensured: set[str] = set()


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


def ensure_limit(settings: Settings) -> str:
    """Create the limit once; a limit someone already tuned in the UI or CLI is left alone."""
    name = limit_name(settings)
    if name in _ensured:
        return name
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # another process (a second worker, a parallel run) may create it first
            with suppress(ObjectAlreadyExists):
                client.upsert_global_concurrency_limit_by_name(name, _key_slots(settings))
    _ensured.add(name)
    return name


@contextmanager
def runninghub_slot(settings: Settings) -> Iterator[None]:
    """Hold one of the key's slots; waits (bounded) when all are taken.

    RH_EXTEND_CONCURRENCY_LIMIT=0 turns the Prefect-side limit off: runs then rely on the
    client's bounded waiting when RunningHub answers 1520/421.
    """
    if settings.concurrency_limit == 0:
        yield
        return
    name = ensure_limit(settings)
    # A short lease: Prefect renews it while this process lives, and a killed run's slot comes
    # back within a minute instead of blocking its own resume for the default five.
    with concurrency(
        name,
        occupy=1,
        timeout_seconds=settings.concurrency_wait_s,
        strict=True,
        lease_duration=LEASE_S,
    ):
        yield
