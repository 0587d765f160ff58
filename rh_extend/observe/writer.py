"""Artifact writes from background threads, off the run's path.

A write to the Prefect API takes 20–80 ms, more when the server is busy (and a SQLite server can
stall for seconds). Made from the poll loop, it delays the next status call — and, for the
final SUCCESS, the release of the RunningHub slot the next video waits for; made at the end of
the archive step, it delays the run's end. So the run only queues the newest write per target
(the progress artifact, a run's report) and goes on; a few daemon threads send them, one write
per target at a time, each in the context it was queued from (Prefect's run and API settings
live in context variables). Runs `flush` before they report their end, so the UI shows the
final state.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
from collections.abc import Callable, Hashable

from rh_extend.observe.common import best_effort

FLUSH_S = 5.0
WORKERS = 4  # writes to different targets go side by side: a batch ends its items by the wave


class _Writer:
    def __init__(self) -> None:
        self._pending: dict[Hashable, Callable[[], object]] = {}
        self._in_flight: set[Hashable] = set()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    def put(self, target: Hashable, write: Callable[[], object]) -> None:
        """Queue WRITE for TARGET, replacing one not sent yet (only the newest matters)."""
        context = contextvars.copy_context()
        with self._changed:
            self._pending.pop(target, None)  # re-insert: keeps first-queued-first-sent
            self._pending[target] = lambda: context.run(write)
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            if len(self._threads) < min(WORKERS, len(self._pending) + len(self._in_flight)):
                thread = threading.Thread(target=self._run, name="rh-extend-progress", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._changed.notify_all()

    def flush(self, timeout_s: float = FLUSH_S) -> bool:
        """Wait until every queued write was sent (or TIMEOUT_S passed)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._pending and not self._in_flight, timeout=timeout_s
            )

    def _ready(self) -> Hashable | None:
        """The oldest target with a write queued and none being sent (a target's writes go in
        order: an artifact is created before it is updated)."""
        return next((target for target in self._pending if target not in self._in_flight), None)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._ready() is not None)
                target = self._ready()
                write = self._pending.pop(target)
                self._in_flight.add(target)
            try:
                best_effort(write)()
            finally:
                with self._changed:
                    self._in_flight.discard(target)
                    self._changed.notify_all()


report_writes = _Writer()


@atexit.register
def _flush_on_exit() -> None:
    """Send what is left — unless the Prefect API is ephemeral: it has stopped by now, and a
    write would start a new one that outlives the process (the CLI flushes before it returns)."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        report_writes.flush(2.0)
