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
finished run doesn't wait for the release. A run reserves its slot once its input is staged,
so the Prefect round trip happens while it looks up earlier results and uploads the video.
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
from http import HTTPStatus
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import SettingsContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from rh_extend.errors import ConfigurationError, SlotWaitTimeoutError
from rh_extend.settings import Settings
from runninghub import RunningHubError

DEFAULT_SLOTS = 3
# A short lease: renewed while this process holds the slot, so a killed run's slot comes back
# within a minute instead of blocking its own resume for Prefect's default five.
LEASE_S = 60.0
RENEW_EVERY_S = LEASE_S / 2  # renewed half-way: time for the retries below before it lapses
RENEW_RETRY_S = (1.0, 2.0, 4.0)
LINGER_S = 2.0  # an idle slot stays with this process that long before going back to Prefect
SUBMITS_FIRST_S = 0.5  # at most this long a finished run lets others' submits go first
logger = logging.getLogger("rh_extend.limits")
_ensured: dict[str, int] = {}  # limit name → its slots, as read or created


def limit_name(settings: Settings) -> str:
    """Named after a short hash of the key: distinct per key, and reveals nothing of it."""
    digest = hashlib.sha256(settings.api_key().encode()).hexdigest()[:10]
    return f"runninghub-key-{digest}"


def _key_slots(settings: Settings) -> int:
    if settings.concurrency_limit:
        return settings.concurrency_limit
    from rh_extend.clients import runninghub_client

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


def _status(exc: Exception) -> int | None:
    return exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None


class _Leases:
    """Prefect's lease API for one global concurrency limit, through one client of this process.

    Prefect's `concurrency()` context manager acquires one lease at a time per process (a queue
    service), renews it from a thread of its own and, with `strict`, cancels the holder by an
    exception injected into its thread when renewal fails. A keeper calls the API itself:
    its slots are acquired side by side (a batch's first wave waits one round trip, not five),
    renewed by the keeper, and a lease that can't be renewed is dropped where it is held.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._client: SyncPrefectClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> SyncPrefectClient:
        with self._lock:
            if self._client is None:  # opened in a keeper: its context has the API settings
                self._client = get_client(sync_client=True)
                self._client.__enter__()
            return self._client

    def warm(self) -> None:
        """Open the client and fetch its CSRF token now, with one harmless POST: else a batch's
        first keepers each fetch a token at once while the first wave waits for its slots.
        Once per process: an open client has its token."""
        if self._client is None:
            _keeper_context().run(lambda: self.client.read_global_concurrency_limits(limit=1))

    def acquire(self, deadline: float) -> UUID:
        """A lease on one slot, waiting (Prefect's Retry-After) until DEADLINE at most."""
        while True:
            try:
                response = self.client.increment_concurrency_slots_with_lease(
                    names=[self.name], slots=1, mode="concurrency", lease_duration=LEASE_S
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != HTTPStatus.LOCKED:
                    raise
                pause = float(exc.response.headers.get("Retry-After", 1.0))
                if time.monotonic() + pause > deadline:
                    raise SlotWaitTimeoutError(f"limit {self.name}: no slot came free") from exc
                time.sleep(pause)  # all slots taken: Prefect says when to ask again
                continue
            answer = response.json()
            if not answer.get("limits"):
                raise ConfigurationError(f"Prefect has no concurrency limit {self.name}")
            return UUID(answer["lease_id"])

    def renew(self, lease: UUID) -> bool:
        """Extend the lease; False once it is gone or can't be renewed before it lapses."""
        for pause in (*RENEW_RETRY_S, None):
            try:
                self.client.renew_concurrency_lease(lease_id=lease, lease_duration=LEASE_S)
                return True
            except Exception as exc:
                gone = _status(exc) in (HTTPStatus.NOT_FOUND, HTTPStatus.GONE)
                logger.warning("renewing a slot of %s failed: %r", self.name, exc)
                if gone or pause is None:
                    return False
                time.sleep(pause)
        return False

    def release(self, lease: UUID) -> None:
        try:
            self.client.release_concurrency_slots_with_lease(lease_id=lease)
        except Exception as exc:  # the lease lapses within LEASE_S anyway
            logger.warning("releasing a slot of %s failed (%r); it lapses in %.0f s",
                           self.name, exc, LEASE_S)  # fmt: skip


class _Keepers:
    """This process's slots of one Prefect limit: at most SIZE keeper threads, each holding one
    slot's lease while runs here use it."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, max(1, size)
        self.leases = _Leases(name)
        self.held = 0  # slots keepers hold, in use or not
        self.free = 0  # held and not lent to a run
        self.keepers = 0  # keeper threads alive (acquiring, holding or releasing)
        self.waiting = 0
        self.reserved = 0  # runs that will want a slot soon (acquired ahead for them)
        self.broken = 0  # lent slots whose lease broke: dropped, not lent again, when given back
        self.turns = 0  # runs here between their start and their `take()` (see Slot)
        self.submitting = 0  # runs here between getting their slot and their submit's answer
        self.closing = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.threads: list[threading.Thread] = []

    def start_turn(self) -> None:
        """Wait until fewer than SIZE runs here are getting ready to submit, then join them."""
        with self.changed:
            self.changed.wait_for(lambda: self.turns < self.size)
            self.turns += 1

    def end_turn(self) -> None:
        with self.changed:
            self.turns -= 1
            self.changed.notify_all()

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
                self.submitting += 1
            finally:
                self.waiting -= 1

    def end_submit(self) -> None:
        with self.changed:
            self.submitting -= 1
            self.changed.notify_all()

    def wait_for_submits(self, timeout_s: float) -> None:
        """Until no run here is about to submit: none between its slot and its submit's answer,
        no slot free while a run waits for one. Bounded: it only orders work, never blocks it."""
        with self.changed:
            self.changed.wait_for(
                lambda: self.submitting == 0 and not (self.free and self.waiting), timeout_s
            )

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
        try:
            try:
                lease = self.leases.acquire(time.monotonic() + timeout_s)
            except BaseException as exc:
                with self.changed:
                    if self.waiting:  # a waiting run must hear why no slot comes
                        self.error = exc
                return
            with self.changed:
                self.held += 1
                self.free += 1
                self.changed.notify_all()
            self._hold(lease)
            self.leases.release(lease)
        finally:
            with self.changed:
                self.keepers -= 1
                self.changed.notify_all()

    def _hold(self, lease: UUID) -> None:
        """Keep the lease, renewing it, until the slot has been idle (not lent, awaited or
        reserved) for LINGER_S, or idle at all when the process ends; then leave the counts
        without it. The linger spares a run that comes a moment later a Prefect round trip, or
        a 423 and its Retry-After."""
        renew_at = time.monotonic() + RENEW_EVERY_S
        idle_since: float | None = None
        with self.changed:
            while True:
                now = time.monotonic()
                if now >= renew_at:
                    if not self._renew_unlocked(lease):
                        self._drop_broken_slot()
                        return
                    renew_at = time.monotonic() + RENEW_EVERY_S
                    continue
                if not self._idle():
                    idle_since = None
                elif self.closing or (idle_since is not None and now >= idle_since + LINGER_S):
                    self.held -= 1
                    self.free -= 1
                    return
                elif idle_since is None:
                    idle_since = now
                wake = renew_at if idle_since is None else min(renew_at, idle_since + LINGER_S)
                self.changed.wait(wake - now)

    def _renew_unlocked(self, lease: UUID) -> bool:
        """Renew without holding the counts' lock: runs here go on meanwhile."""
        self.changed.release()
        try:
            return self.leases.renew(lease)
        finally:
            self.changed.acquire()

    def _drop_broken_slot(self) -> None:
        """A held slot's lease broke: it no longer counts against the limit, so it is dropped
        (a free one at once, a lent one when given back) instead of being lent again. A run
        using it carries on: it has likely submitted already, and its task is paid for."""
        logger.warning("a slot of %s was lost; the next run acquires a new one", self.name)
        self.held -= 1
        if self.free:
            self.free -= 1
        else:
            self.broken += 1

    def _idle(self) -> bool:
        return self.free > self.reserved and self.waiting == 0

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
    the keeper: a keeper outlives that run, and in a copied context `get_client()` would hand
    the keeper that run's Prefect client, closed when the run ends."""
    context = contextvars.Context()
    if (settings := SettingsContext.get()) is not None:
        context.run(settings.model_copy().__enter__)  # a copy: its entry token is its own
    return context


_keepers: dict[str, _Keepers] = {}
_keepers_lock = threading.Lock()


def _keepers_for(name: str, size: int) -> _Keepers:
    with _keepers_lock:
        return _keepers.setdefault(name, _Keepers(name, size))


def warm_slots(settings: Settings) -> None:
    """Learn the key's limit and open the client its slots are leased through, before runs
    here ask for slots (a batch, before it fans out)."""
    _keepers_for(*ensure_limit(settings)).leases.warm()


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
    """A run's claim on one of the key's slots, from its start to the end of its polling.

    Up to the key's size of this process's runs get ready to submit at once (stage, look up,
    upload, price, wait for a slot): in a batch that starts more items than there are slots,
    the first wave then has the machine to itself and reaches RunningHub sooner, and the rest
    follow as slots' holders submit. `reserve()` starts acquiring the Prefect slot in the
    background, `take()` waits for it (bounded) and hands the turn to the next run.
    """

    def __init__(
        self, keepers: _Keepers | None, timeout_s: float, settings: Settings | None = None
    ) -> None:
        """KEEPERS None: resolved from SETTINGS when first needed, or no limit without them."""
        self.keepers, self.timeout_s, self.settings = keepers, timeout_s, settings
        self.turn = self.reserved = self.taken = self.submitting = False

    @property
    def off(self) -> bool:
        return self.keepers is None and self.settings is None

    def wait_turn(self) -> None:
        if self.keepers is not None:
            self.keepers.start_turn()
            self.turn = True

    def _resolved(self) -> _Keepers:
        if self.keepers is None:
            assert self.settings is not None
            self.keepers = _keepers_for(*ensure_limit(self.settings))
        return self.keepers

    def reserve(self) -> None:
        if not (self.off or self.reserved or self.taken):
            self._resolved().reserve(self.timeout_s)
            self.reserved = True

    def take(self) -> None:
        """Wait (bounded) until the slot is this run's; a no-op when the limit is off."""
        if self.off or self.taken:
            return
        try:
            self._resolved().lend(self.timeout_s, reserved=self.reserved)
        finally:
            self.reserved = False
            self._end_turn()
        self.taken = self.submitting = True

    def submitted(self) -> None:
        """The run's submit has been answered (see `let_submits_go_first`)."""
        if self.submitting and self.keepers is not None:
            self.keepers.end_submit()
            self.submitting = False

    def let_submits_go_first(self, timeout_s: float = SUBMITS_FIRST_S) -> None:
        """Wait (briefly) while other runs here submit: a run that has just given its slot back
        downloads and archives at the very moment the next run claims and submits on it, and on a
        busy machine that claim and submit are what the key's idle slot waits for."""
        if self.keepers is not None:
            self.keepers.wait_for_submits(timeout_s)

    def close(self) -> None:
        if self.keepers is None:
            return
        self.submitted()
        if self.taken:
            self.keepers.give_back()
        elif self.reserved:
            self.keepers.cancel()
        self._end_turn()

    def _end_turn(self) -> None:
        if self.turn and self.keepers is not None:
            self.keepers.end_turn()
            self.turn = False


@contextmanager
def runninghub_slot(settings: Settings) -> Iterator[Slot]:
    """A slot of the key for the block (see `Slot`), given back at its end.

    Entered before the run's input is checked, so it makes no API call itself: the turn waits
    only when this process already knows the limit (a batch learns it before fanning out), and
    the limit is looked up at `reserve()`. RH_EXTEND_CONCURRENCY_LIMIT=0 turns the Prefect-side
    limit off: runs then rely on the client's bounded waiting when RunningHub answers 1520/421.
    """
    if settings.concurrency_limit == 0:
        yield Slot(None, 0.0)
        return
    name = limit_name(settings)
    known = _keepers_for(name, _ensured[name]) if name in _ensured else None
    slot = Slot(known, settings.concurrency_wait_s, settings)
    slot.wait_turn()
    try:
        yield slot
    finally:
        slot.close()
