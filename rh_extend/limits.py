"""One Prefect global concurrency limit per RunningHub key, sized from the key's own limit.

RunningHub refuses submits beyond a key's concurrent-task limit (1520/421). Holding a Prefect slot
from submit to the end of polling makes extra runs queue locally, visibly in the Prefect UI,
instead of storming RunningHub and waiting in client back-off loops.

Inside one process the Prefect slots are held by keeper threads, one slot each, and lent to the
runs here: a slot a run gives back goes straight to the next run waiting in this process, with
no API call, instead of being released and acquired again (≈ 70 ms, and a 423 answer would make
the waiter sleep its Retry-After, about one average occupancy, while RunningHub sits idle). A
keeper releases its slot to Prefect once no run here has wanted it for LINGER_S (at once when
the process ends), in the background: the limit still bounds all processes together, and a
finished run doesn't wait for the release. A run reserves its slot before its upload, so the
Prefect round trip happens while the video uploads.
"""

from __future__ import annotations

import atexit
import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.context import SettingsContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from rh_extend.settings import Settings
from runninghub import RunningHubError

DEFAULT_SLOTS = 3
LEASE_S = 60.0
LINGER_S = 2.0  # an idle slot stays with this process that long before going back to Prefect
WAKE_S = 1.0  # a holding keeper wakes this often to notice a broken lease
logger = logging.getLogger("rh_extend.limits")
_ensured: dict[str, int] = {}  # limit name → its slots, as read or created


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


class _Keepers:
    """This process's slots of one Prefect limit: at most SIZE keeper threads, each holding one
    slot (Prefect's own `concurrency()`: 423 retries, lease renewal) while runs here use it."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, max(1, size)
        self.held = 0  # slots keepers hold, in use or not
        self.free = 0  # held and not lent to a run
        self.keepers = 0  # keeper threads alive (acquiring, holding or releasing)
        self.waiting = 0
        self.reserved = 0  # runs that will want a slot soon (acquired ahead for them)
        self.broken = 0  # lent slots whose lease broke: dropped, not lent again, when given back
        self.closing = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.threads: list[threading.Thread] = []

    def reserve(self, timeout_s: float) -> None:
        """A run will want a slot soon: start acquiring one now, so it is there when asked for."""
        with self.changed:
            self.reserved += 1
            self._spawn_if_short(time.monotonic() + timeout_s)

    def cancel(self) -> None:
        """A reservation that won't be used after all."""
        with self.changed:
            self.reserved -= 1
            self.changed.notify_all()

    def lend(self, timeout_s: float, *, reserved: bool = False) -> None:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            if reserved:
                self.reserved -= 1
            self.waiting += 1
            try:
                while self.free == 0:
                    if self.error is not None:
                        error, self.error = self.error, None
                        raise error
                    self._spawn_if_short(deadline)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SlotWaitTimeoutError(
                            f"no RunningHub slot came free within {timeout_s:.0f} s (limit "
                            f"{self.name}: {self.size}); raise RH_EXTEND_CONCURRENCY_WAIT_S or "
                            "the limit's size"
                        )
                    self.changed.wait(left)
                self.free -= 1
            finally:
                self.waiting -= 1

    def give_back(self) -> None:
        with self.changed:
            if self.broken:
                self.broken -= 1
            else:
                self.free += 1
            self.changed.notify_all()

    def _spawn_if_short(self, deadline: float) -> None:
        """One more keeper when fewer are alive than runs here use, wait for or reserved."""
        wanted = (self.held - self.free) + self.waiting + self.reserved
        if self.keepers < min(self.size, wanted):
            self._spawn(deadline - time.monotonic())

    def _spawn(self, timeout_s: float) -> None:
        self.keepers += 1
        thread = threading.Thread(
            target=_keeper_context().run,
            args=(self._keep, max(0.0, timeout_s)),
            name=f"rh-extend-slot-{self.name}",
            daemon=True,
        )
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _keep(self, timeout_s: float) -> None:
        acquired = holding = False
        try:
            # A short lease: Prefect renews it while this process lives, and a killed run's slot
            # comes back within a minute instead of blocking its own resume for the default five.
            # A renewal that fails for good cancels this thread (strict), not the runs: a run
            # lent the slot has likely submitted already and must see its task through.
            with (
                concurrency(
                    self.name,
                    occupy=1,
                    timeout_seconds=timeout_s,
                    strict=True,
                    lease_duration=LEASE_S,
                ),
                self.changed,
            ):
                acquired = holding = True
                self.held += 1
                self.free += 1
                self.changed.notify_all()
                self._hold_while_wanted()
                self.held -= 1
                self.free -= 1
                holding = False
        except BaseException as exc:
            with self.changed:
                if holding:
                    self._drop_broken_slot()
                if acquired:  # the runs carry on; a new keeper acquires for whoever waits
                    logger.warning("a slot of %s was lost: %r", self.name, exc)
                elif self.waiting:  # could not acquire: a waiting run must hear why
                    self.error = exc
        finally:
            with self.changed:
                self.keepers -= 1
                self.changed.notify_all()

    def _drop_broken_slot(self) -> None:
        """A held slot's lease broke: it no longer counts against the limit, so it is dropped
        (a free one at once, a lent one when given back) instead of being lent again."""
        self.held -= 1
        if self.free:
            self.free -= 1
        else:
            self.broken += 1

    def _idle(self) -> bool:
        return self.free > self.reserved and self.waiting == 0

    def _hold_while_wanted(self) -> None:
        """Return once the slot has been idle (not lent, awaited or reserved) for LINGER_S, or
        idle at all when the process ends. The linger spares a run that comes a moment later
        a Prefect round trip — or a 423 and its Retry-After while this slot is on its way back.
        """
        while True:
            # in steps: Prefect cancels a keeper whose lease broke by an exception injected
            # into this thread, which a blocked wait would only see once woken
            while not self.changed.wait_for(self._idle, timeout=WAKE_S):
                pass
            if self.closing:
                return
            wanted_again = self.changed.wait_for(
                lambda: self.closing or not self._idle(), timeout=LINGER_S
            )
            if not wanted_again or (self.closing and self._idle()):
                return

    def close(self) -> None:
        with self.changed:
            self.closing = True
            self.changed.notify_all()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def _keeper_context() -> contextvars.Context:
    """The Prefect settings in effect here (API URL, profile) and nothing of the run spawning
    the keeper: a keeper outlives that run, and the run's Prefect client, which a copied context
    would hand to the lease renewal, is closed when the run ends."""
    context = contextvars.Context()
    if (settings := SettingsContext.get()) is not None:
        context.run(SettingsContext.__var__.set, settings)
    return context


_keepers: dict[str, _Keepers] = {}
_keepers_lock = threading.Lock()


def _keepers_for(name: str, size: int) -> _Keepers:
    with _keepers_lock:
        return _keepers.setdefault(name, _Keepers(name, size))


def release_idle_slots(timeout_s: float = 2.0) -> None:
    """Give every idle slot back to Prefect now instead of after its linger: for a command that
    is about to exit (a Prefect API started in-process, ephemeral, stops with it)."""
    for keepers in list(_keepers.values()):
        keepers.close()
        keepers.join(timeout_s)
        with keepers.changed:
            keepers.closing = False


@atexit.register
def _release_on_exit() -> None:
    """A process that ends gives its slots back rather than leaving them to expire with their
    lease — unless its Prefect API is ephemeral: that server has already stopped by now, and
    calling it would start a new one that outlives the process."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        release_idle_slots()


class Slot:
    """A run's claim on one of the key's slots: reserved on entry, `take()`n before the submit."""

    def __init__(self, keepers: _Keepers | None, timeout_s: float) -> None:
        self.keepers, self.timeout_s, self.taken = keepers, timeout_s, False

    def take(self) -> None:
        """Wait (bounded) until the slot is this run's; a no-op when the limit is off."""
        if self.keepers is not None and not self.taken:
            self.keepers.lend(self.timeout_s, reserved=True)
            self.taken = True


@contextmanager
def runninghub_slot(settings: Settings) -> Iterator[Slot]:
    """A slot of the key for the block: acquired from here on in the background, held from
    `take()` to the end of the block.

    Reserving early hides the Prefect round trip behind the upload and the price preview.
    RH_EXTEND_CONCURRENCY_LIMIT=0 turns the Prefect-side limit off: runs then rely on the
    client's bounded waiting when RunningHub answers 1520/421.
    """
    if settings.concurrency_limit == 0:
        yield Slot(None, 0.0)
        return
    name, slots = ensure_limit(settings)
    keepers = _keepers_for(name, slots)
    keepers.reserve(settings.concurrency_wait_s)
    slot = Slot(keepers, settings.concurrency_wait_s)
    try:
        yield slot
    finally:
        if slot.taken:
            keepers.give_back()
        else:
            keepers.cancel()
