"""The RunningHub key's slots inside one process (rh_extend.limits): lent from run to run without
a Prefect round trip, still bounded by the Prefect limit that all processes share."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from rh_extend import limits
from rh_extend.errors import SlotWaitTimeoutError
from rh_extend.local_servers import wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def limit() -> Iterator[str]:
    name = f"test-slots-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    yield name
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


@pytest.fixture
def acquisitions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Prefect lease the keepers ask for (the real call still happens)."""
    from prefect.client.orchestration import SyncPrefectClient

    made: list[str] = []
    real = SyncPrefectClient.increment_concurrency_slots_with_lease

    def counted(client: SyncPrefectClient, names: list[str], *args: Any, **kw: Any) -> Any:
        made.extend(names)
        return real(client, names, *args, **kw)

    monkeypatch.setattr(SyncPrefectClient, "increment_concurrency_slots_with_lease", counted)
    return made


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases renewed after 1 s: renewal within a test's time."""
    monkeypatch.setattr(limits, "RENEW_EVERY_S", 1.0)
    monkeypatch.setattr(limits, "RENEW_RETRY_S", (0.1, 0.1, 0.1))


def _active(name: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(name).active_slots)


def _until(what: str, probe: Any, timeout_s: float = 20.0) -> None:
    wait_for(what, probe, timeout_s, every_s=0.05)


def test_a_given_back_slot_goes_to_the_next_run_here_without_a_round_trip(
    limit: str, acquisitions: list[str]
) -> None:
    keepers = limits._Keepers(limit, 1)
    keepers.lend(10)
    second_has_it = threading.Event()

    def second_run() -> None:
        keepers.lend(10)
        second_has_it.set()

    waiter = threading.Thread(target=second_run)
    waiter.start()
    _until("the second run waiting", lambda: keepers.waiting == 1)
    assert not second_has_it.is_set()
    keepers.give_back()
    assert second_has_it.wait(5)
    waiter.join(5)
    assert acquisitions == [limit]  # one Prefect slot served both runs
    assert _active(limit) == 1

    keepers.give_back()  # nobody waits: the keeper releases the slot to Prefect
    _until("the slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)
    assert keepers.keepers == 0 and keepers.held == 0 and keepers.free == 0


def _held_elsewhere(limit: str) -> Callable[[], None]:
    """The limit's one slot held by Prefect's own concurrency(), as another process would;
    returns the call that releases it (and waits until it has)."""
    holds, release = threading.Event(), threading.Event()

    def other_process() -> None:
        with concurrency(limit, occupy=1, timeout_seconds=10, strict=True):
            holds.set()
            release.wait(10)

    other = threading.Thread(target=other_process)
    other.start()
    assert holds.wait(10)

    def released() -> None:
        release.set()
        other.join(10)

    return released


def test_a_slot_held_by_another_process_bounds_the_runs_here(limit: str) -> None:
    release_elsewhere = _held_elsewhere(limit)
    keepers = limits._Keepers(limit, 1)
    with pytest.raises(SlotWaitTimeoutError):
        keepers.lend(1.5)
    release_elsewhere()
    keepers.lend(60)  # now free: acquired after Prefect's Retry-After
    assert _active(limit) == 1
    keepers.give_back()
    _until("the slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)


def test_a_reserved_slot_is_acquired_ahead_and_released_when_not_used(
    limit: str, acquisitions: list[str]
) -> None:
    keepers = limits._Keepers(limit, 1)
    keepers.reserve(10)
    _until("the slot acquired ahead", lambda: keepers.free == 1)
    assert _active(limit) == 1
    keepers.lend(0.5, reserved=True)  # already there: no wait, no second acquisition
    assert acquisitions == [limit]
    keepers.give_back()
    _until("the slot back in Prefect", lambda: _active(limit) == 0)

    keepers.reserve(10)
    _until("the slot acquired ahead again", lambda: keepers.free == 1)
    keepers.cancel()  # the run stopped before its submit (say, over its budget)
    _until("the unused slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)
    assert (keepers.keepers, keepers.held, keepers.free, keepers.reserved) == (0, 0, 0, 0)


class Renewals:
    """The outcome of every lease renewal: None for a renewed lease, else what it raised. The
    real call happens, except for the next `refusals` attempts (a Prefect API failing them)."""

    def __init__(self) -> None:
        self.outcomes: list[BaseException | None] = []
        self.refusals = 0


@pytest.fixture
def renewals(monkeypatch: pytest.MonkeyPatch) -> Renewals:
    from prefect.client.orchestration import SyncPrefectClient

    seen = Renewals()
    real = SyncPrefectClient.renew_concurrency_lease

    def observed(client: SyncPrefectClient, *args: Any, **kwargs: Any) -> Any:
        try:
            if seen.refusals > 0:
                seen.refusals -= 1
                raise RuntimeError("renewal refused by the test")
            answer = real(client, *args, **kwargs)
        except BaseException as exc:
            seen.outcomes.append(exc)
            raise
        seen.outcomes.append(None)
        return answer

    monkeypatch.setattr(SyncPrefectClient, "renew_concurrency_lease", observed)
    return seen


@pytest.mark.usefixtures("short_leases")
def test_a_keeper_renews_its_lease_after_the_run_that_spawned_it_has_ended(
    limit: str, renewals: Renewals
) -> None:
    """A keeper acquires for whichever run asks next, often after the run that spawned it has
    ended and closed its Prefect client: the renewal must not use that client."""
    from prefect import flow

    keepers = limits._Keepers(limit, 1)
    release_elsewhere = _held_elsewhere(limit)

    @flow(name="slot-reserving-run")
    def run_that_reserves_and_ends() -> None:
        keepers.reserve(30)  # the keeper can't acquire yet: the slot is held elsewhere

    # in a thread of its own, as in a batch or a worker: the run opens its own Prefect client
    # (the test's thread may hold one open) and closes it when it ends
    run = threading.Thread(target=run_that_reserves_and_ends)
    run.start()
    run.join(30)
    _until("the other holder's lease renewed", lambda: renewals.outcomes)
    renewals.outcomes.clear()  # from here on, renewals are the keeper's
    release_elsewhere()
    _until("the keeper holding the slot", lambda: keepers.held == 1)
    _until("its lease renewed", lambda: len(renewals.outcomes) >= 1)
    assert renewals.outcomes[0] is None, f"renewal failed: {renewals.outcomes[0]!r}"
    keepers.lend(5, reserved=True)
    assert keepers.held == 1 and keepers.keepers == 1
    keepers.give_back()
    _until("the slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)


@pytest.mark.usefixtures("short_leases")
def test_a_broken_lease_drops_its_slot_and_leaves_the_runs_alone(
    limit: str, renewals: Renewals
) -> None:
    keepers = limits._Keepers(limit, 1)
    renewals.refusals = 1 + len(limits.RENEW_RETRY_S)  # this lease breaks, later ones don't
    keepers.lend(10)  # the first run has the slot, and has submitted
    second: dict[str, Any] = {}

    def second_run() -> None:
        try:
            keepers.lend(30)
            second["got"] = True
        except BaseException as exc:  # what the old keeper handed to waiters
            second["error"] = exc

    waiter = threading.Thread(target=second_run)
    waiter.start()
    _until("the lease given up after the renewal attempts", lambda: keepers.broken == 1)
    waiter.join(30)
    assert second == {"got": True}  # a new keeper acquired for it; no error reached it
    assert keepers.broken == 1  # the first run's slot: dropped when given back, never lent
    assert _active(limit) == 1  # the broken lease was released: the limit still holds
    keepers.give_back()  # the first run ends: its broken slot is dropped, not lent
    assert (keepers.broken, keepers.free) == (0, 0)
    keepers.give_back()
    _until("the slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)


def test_only_as_many_runs_get_ready_to_submit_as_there_are_slots(limit: str) -> None:
    """The third run of a size-2 limit starts staging once one of the first two has its slot."""
    keepers = limits._Keepers(limit, 2)
    first, second = limits.Slot(keepers, 10), limits.Slot(keepers, 10)
    first.wait_turn()
    second.wait_turn()
    third_started = threading.Event()

    def third_run() -> None:
        limits.Slot(keepers, 10).wait_turn()
        third_started.set()

    waiter = threading.Thread(target=third_run)
    waiter.start()
    _until("the third run waiting for its turn", lambda: keepers.changed._waiters)  # type: ignore[attr-defined]
    first.reserve()  # uploading: still its turn
    assert not third_started.wait(0.3)
    first.take()  # about to submit: the turn passes on
    assert third_started.wait(5)
    waiter.join(5)
    assert keepers.turns == 2
    second.close()  # ended before its submit (already archived, say): its turn ends too
    first.close()
    assert keepers.turns == 1 and keepers.free == 1  # the slot lingers, ready for the next run
    _until("the slot back in Prefect", lambda: _active(limit) == 0)
    keepers.join(5)


def test_a_finished_run_lets_the_next_submit_on_its_slot_go_first(limit: str) -> None:
    """The run that gives its slot back waits to download until the run taking it has submitted:
    on a busy machine that claim and submit are what the key's idle slot waits for."""
    keepers = limits._Keepers(limit, 1)
    first, second = limits.Slot(keepers, 10), limits.Slot(keepers, 10)
    first.take()
    taker = threading.Thread(target=second.take)
    taker.start()
    _until("the second run waiting for the slot", lambda: keepers.waiting == 1)
    first.close()  # its task finished: the slot goes to the second run
    went_on = threading.Event()
    archiver = threading.Thread(target=lambda: (first.let_submits_go_first(30), went_on.set()))
    archiver.start()
    taker.join(10)
    assert second.taken and keepers.submitting == 1
    _until("the first run waiting for the submit", lambda: keepers.changed._waiters)  # type: ignore[attr-defined]
    assert not went_on.is_set()
    second.submitted()
    assert went_on.wait(5)
    archiver.join(5)
    second.close()
    second.let_submits_go_first(0.1)  # nothing in flight: returns at once
    keepers.join(5)
