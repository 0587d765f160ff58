"""The background writer and the progress artifact's timing: no servers, no Prefect API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rh_extend.observe import artifacts
from rh_extend.observe.writer import WORKERS, _Writer

WAIT_S = 5.0


def test_writes_to_one_target_go_one_at_a_time_in_order() -> None:
    writer = _Writer()
    order: list[int] = []
    running = threading.Semaphore(1)
    first_started, release_first = threading.Event(), threading.Event()

    def write(number: int) -> Callable[[], None]:
        def run() -> None:
            assert running.acquire(blocking=False), "two writes of one target ran at once"
            if number == 1:
                first_started.set()
                release_first.wait(WAIT_S)
            order.append(number)
            running.release()

        return run

    writer.put("progress", write(1))
    assert first_started.wait(WAIT_S)
    writer.put("progress", write(2))  # queued behind the write in flight
    writer.put("progress", write(3))  # replaces 2: only the newest matters
    release_first.set()
    assert writer.flush(WAIT_S)
    assert order == [1, 3]


def test_writes_to_different_targets_go_side_by_side() -> None:
    writer = _Writer()
    barrier = threading.Barrier(WORKERS, timeout=WAIT_S)
    done: list[str] = []

    def write(name: str) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()  # breaks (and the write fails) unless all run at the same time
            done.append(name)

        return run

    for index in range(WORKERS):
        writer.put(("report", index), write(f"report-{index}"))
    assert writer.flush(WAIT_S)
    assert sorted(done) == [f"report-{index}" for index in range(WORKERS)]


def test_flush_waits_for_the_write_in_flight() -> None:
    writer = _Writer()
    started, release = threading.Event(), threading.Event()
    writer.put("t", lambda: (started.set(), release.wait(WAIT_S)))
    assert started.wait(WAIT_S)
    assert not writer.flush(0.05)
    release.set()
    assert writer.flush(WAIT_S)


@dataclass
class _Status:
    value: str


@dataclass
class _Response:
    status: _Status


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[float, str]], _Clock]:
    """The progress artifact's writes, as (value, description), under a clock the test moves."""
    clock = _Clock()
    sent: list[tuple[float, str]] = []
    monkeypatch.setattr(artifacts.time, "monotonic", clock)
    monkeypatch.setattr(
        artifacts.PollProgress, "_push", lambda self, value, text: sent.append((value, text))
    )
    return sent, clock


def _poll(progress: Any, clock: _Clock, at: float, status: str) -> None:
    clock.now = 1000.0 + at
    progress.update(_Response(_Status(status)))


def test_a_task_done_before_the_progress_delay_gets_no_progress_artifact(
    pushes: tuple[list[tuple[float, str]], _Clock],
) -> None:
    sent, clock = pushes
    progress = artifacts.PollProgress("a" * 64, "123", typical_s=180)
    for at, status in ((0.1, "QUEUED"), (0.5, "RUNNING"), (2.0, "RUNNING"), (2.1, "SUCCESS")):
        _poll(progress, clock, at, status)
    assert sent == []


def test_a_longer_task_gets_its_progress_artifact_after_the_delay(
    pushes: tuple[list[tuple[float, str]], _Clock],
) -> None:
    sent, clock = pushes
    progress = artifacts.PollProgress("a" * 64, "123", typical_s=100)
    _poll(progress, clock, 1.0, "RUNNING")
    _poll(progress, clock, artifacts.PROGRESS_AFTER_S - 0.1, "RUNNING")
    assert sent == []
    _poll(progress, clock, artifacts.PROGRESS_AFTER_S + 1.0, "RUNNING")
    _poll(progress, clock, artifacts.PROGRESS_AFTER_S + 2.0, "RUNNING")  # within PROGRESS_EVERY_S
    _poll(progress, clock, artifacts.PROGRESS_AFTER_S + 3.0, "SUCCESS")  # a change: at once
    assert [value for value, _ in sent] == [5.0, 100.0]
    assert sent[0][1].startswith("RUNNING 5 s of a typical 100 s")
    assert sent[1][1].startswith("SUCCESS after 8 s")


def test_a_failure_is_shown_whenever_it_comes(
    pushes: tuple[list[tuple[float, str]], _Clock],
) -> None:
    sent, clock = pushes
    progress = artifacts.PollProgress("a" * 64, "123", typical_s=100)
    _poll(progress, clock, 0.5, "RUNNING")
    progress.mark_failed(RuntimeError("generation failed"))
    assert len(sent) == 1 and sent[0][1].startswith("FAILED: ")
