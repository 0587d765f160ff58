"""Stage events, in process: each step reports start, advance and done; the terminal's bars
(`display.StageBars`) listen. (Not the Prefect progress artifact: see `observe`.)

Prefect tasks run in threads of the same process as the flow when called from the CLI, so a
plain list of listeners is enough; runs on remote workers simply have no listener.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

STAGES = ("stage", "upload", "submit", "poll", "download", "archive")

EventKind = Literal["start", "advance", "done", "info"]


@dataclass(frozen=True)
class StageEvent:
    stage: str
    kind: EventKind
    completed: float | None = None
    total: float | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[StageEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def emit(stage: str, kind: EventKind, **fields: Any) -> None:
    event = StageEvent(stage=stage, kind=kind, **fields)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)
