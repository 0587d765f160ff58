"""The background writer, the progress artifact's timing and the batch's report and table:
no servers, no Prefect API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rh_extend.observe import artifacts
from rh_extend.observe.render import batch_rows, render_batch_markdown
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
        artifacts.ProgressArtifact, "_push", lambda self, value, text: sent.append((value, text))
    )
    return sent, clock


def _poll(progress: Any, clock: _Clock, at: float, status: str) -> None:
    clock.now = 1000.0 + at
    progress.update(_Response(_Status(status)))


def test_a_task_done_before_the_progress_delay_gets_no_progress_artifact(
    pushes: tuple[list[tuple[float, str]], _Clock],
) -> None:
    sent, clock = pushes
    progress = artifacts.ProgressArtifact("a" * 64, "123", typical_s=180)
    for at, status in ((0.1, "QUEUED"), (0.5, "RUNNING"), (2.0, "RUNNING"), (2.1, "SUCCESS")):
        _poll(progress, clock, at, status)
    assert sent == []


def test_a_longer_task_gets_its_progress_artifact_after_the_delay(
    pushes: tuple[list[tuple[float, str]], _Clock],
) -> None:
    sent, clock = pushes
    progress = artifacts.ProgressArtifact("a" * 64, "123", typical_s=100)
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
    progress = artifacts.ProgressArtifact("a" * 64, "123", typical_s=100)
    _poll(progress, clock, 0.5, "RUNNING")
    progress.mark_failed(RuntimeError("generation failed"))
    assert len(sent) == 1 and sent[0][1].startswith("FAILED: ")


@dataclass
class _Item:
    """Shaped like the batch flow's `ItemOutcome`."""

    label: str
    status: str
    model: str | None = None
    output_uri: str | None = None
    task_id: str | None = None
    request_key: str | None = None
    cause: str | None = None
    flow_run_id: str | None = None
    seconds: float = 0.0


BATCH = [
    _Item("a.mp4", "archived", "wan-2.7", "s3://b/a/out.mp4", "1", "k" * 64, None, "r", 12.345),
    _Item("b.mp4", "reused", "wan-2.7", "s3://b/b/out.mp4", cause="ignored: it succeeded"),
    _Item("c.mp4", "failed", cause="TaskFailedError: a | b"),
    _Item("d.mp4", "duplicate"),
]


def test_batch_rows_fill_every_column_with_empty_strings_for_missing_values() -> None:
    rows = batch_rows(BATCH)
    columns = ["item", "status", "model", "output", "task_id", "request_key", "cause"]
    columns += ["flow_run_id", "seconds"]
    assert [list(row) for row in rows] == [columns] * len(BATCH)
    assert rows[0] == {
        "item": "a.mp4",
        "status": "archived",
        "model": "wan-2.7",
        "output": "s3://b/a/out.mp4",
        "task_id": "1",
        "request_key": "k" * 64,
        "cause": "",
        "flow_run_id": "r",
        "seconds": 12.3,
    }
    missing = dict.fromkeys(columns[2:-1], "")
    assert rows[3] == {"item": "d.mp4", "status": "duplicate", **missing, "seconds": 0.0}


def test_batch_markdown_shows_the_output_of_a_success_and_the_cause_otherwise() -> None:
    markdown = render_batch_markdown("s3://in/box/", "4 items: …", BATCH)
    assert markdown.splitlines() == [
        "# Batch s3://in/box/",
        "",
        "4 items: …",
        "",
        "| item | status | output / cause |",
        "|---|---|---|",
        "| a.mp4 | archived | s3://b/a/out.mp4 |",
        "| b.mp4 | reused | s3://b/b/out.mp4 |",
        "| c.mp4 | failed | TaskFailedError: a / b |",
        "| d.mp4 | duplicate |  |",
    ]
