"""Artifact writes from one background thread, off the run's path.

A write to the Prefect API takes 20–80 ms, more when the server is busy (and a SQLite server can
stall for seconds). Made from the poll loop, it delays the next status call — and, for the
final SUCCESS, the release of the RunningHub slot the next video waits for; made at the end of
the archive step, it delays the run's end. So the run only queues the newest write per target
(the progress artifact, a run's report) and goes on; one daemon thread sends them, each in the
context it was queued from (Prefect's run and API settings live in context variables). Runs
`flush` before they report their end, so the UI shows the final state.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
from collections.abc import Callable, Hashable

from rh_extend.observe.common import best_effort

FLUSH_S = 5.0


class _Writer:
    def __init__(self) -> None:
        self._pending: dict[Hashable, Callable[[], object]] = {}
        self._busy = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, target: Hashable, write: Callable[[], object]) -> None:
        """Queue WRITE for TARGET, replacing one not sent yet (only the newest matters)."""
        context = contextvars.copy_context()
        with self._changed:
            self._pending.pop(target, None)  # re-insert: keeps first-queued-first-sent
            self._pending[target] = lambda: context.run(write)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rh-extend-progress", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout_s: float = FLUSH_S) -> bool:
        """Wait until every queued write was sent (or TIMEOUT_S passed)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._pending and not self._busy, timeout=timeout_s
            )

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending))
                write = self._pending.pop(next(iter(self._pending)))
                self._busy = True
            try:
                best_effort(write)()
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


report_writes = _Writer()


@atexit.register
def _flush_on_exit() -> None:
    """Send what is left — unless the Prefect API is ephemeral: it has stopped by now, and a
    write would start a new one that outlives the process (the CLI flushes before it returns)."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        report_writes.flush(2.0)
