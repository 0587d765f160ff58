"""Running an extension in this process, as the `extend` command and the demo do.

The run goes through Prefect (a flow run with its task runs, reports and events), while the
terminal shows the stages as they pass; before returning, the last report writes are sent and
idle concurrency slots given back, while an ephemeral Prefect API still runs in this process.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

from rich.console import Console

from rh_extend import stage_events
from rh_extend.display import RunContext, StageBars, quiet_prefect_console
from rh_extend.request import ExtendRequest
from rh_extend.result import ExtendResult
from rh_extend.settings import load_settings


def prevalidate(**fields: Any) -> ExtendRequest:
    """Everything that can be checked without the video or Prefect: fail in a second, not 15."""
    from rh_extend.flows.extend_video import check_settings

    request = ExtendRequest.checked(**fields)
    check_settings(load_settings())
    return request


def run_extension(
    request: ExtendRequest,
    context: RunContext,
    *,
    resubmit: bool = False,
    display: Console | None = None,
) -> ExtendResult:
    """`extend_video` as a flow run of this process; stages drawn on `display` when given."""
    from rh_extend.flows.direct import direct_run
    from rh_extend.flows.extend_video import extend_video

    with ExitStack() as stack:
        stack.enter_context(direct_run(request.model))
        stack.enter_context(stage_events.listening(context))
        if display is not None:
            bars = stack.enter_context(StageBars(display))
            stack.enter_context(stage_events.listening(bars))
            stack.enter_context(stage_events.listening(_quiet_prefect_once()))
        try:
            result: ExtendResult = extend_video(request, resubmit)
        finally:
            settle()
        return result


def settle() -> None:
    """Before a command returns: the last report writes sent and idle slots given back, while
    an ephemeral Prefect API (no PREFECT_API_URL) still runs in this process."""
    from rh_extend.limits import release_idle_slots
    from rh_extend.observe import report_writes

    report_writes.flush()
    release_idle_slots()


def _quiet_prefect_once() -> Any:
    """Prefect's console logs would tear the progress bars: silence them at the first stage."""
    done = threading.Event()

    def listener(event: stage_events.StageEvent) -> None:
        if not done.is_set():
            quiet_prefect_console()
            done.set()

    return listener
