"""What `rh_extend/prefect_internals.py` relies on still holds in the Prefect installed here.

If one of these fails after a Prefect upgrade, the piece it guards must go or change: see that
module's docstring for what each one saves.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow, get_client
from prefect.context import SyncClientContext
from pydantic import BaseModel

from rh_extend.prefect_internals import plain_json_parameters, using_sync_client

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow
def _client_of_this_run() -> int:
    context = SyncClientContext.get()
    assert context is not None
    return id(context.client)


def test_a_run_started_inside_using_sync_client_runs_on_that_client() -> None:
    with get_client(sync_client=True) as client:
        with using_sync_client(client):
            assert get_client(sync_client=True) is client
            assert _client_of_this_run() == id(client)
        assert SyncClientContext.get() is None


class _Request(BaseModel):
    source: str
    duration: int | None = None


@flow
def _echo(request: _Request, take: str | None = None) -> dict[str, Any]:
    return {"request": request.model_dump(), "take": take}


def test_the_engine_serializes_a_new_runs_parameters_through_the_flows_method() -> None:
    calls: list[dict[str, Any]] = []
    echo = plain_json_parameters(_echo.with_options(name="echo-plain-json"))
    ours = echo.serialize_parameters

    def counted(parameters: dict[str, Any]) -> dict[str, Any]:
        calls.append(parameters)
        return ours(parameters)

    echo.serialize_parameters = counted  # type: ignore[method-assign]

    state = echo(request=_Request(source="a.mp4", duration=5), take="t1", return_state=True)

    assert calls, "Prefect no longer calls Flow.serialize_parameters when it creates a run"
    assert state.result() == {"request": {"source": "a.mp4", "duration": 5}, "take": "t1"}
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.parameters == {"request": {"source": "a.mp4", "duration": 5}, "take": "t1"}
