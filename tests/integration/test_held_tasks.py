"""A run's held tasks are its labels: none may be lost when a batch's items label it at once."""

from __future__ import annotations

import contextvars
import threading

import pytest
from prefect import flow, get_client
from prefect.runtime import flow_run

from rh_extend.held_tasks import held_by, hold

pytestmark = pytest.mark.usefixtures("prefect_api")
ITEMS = 8


@flow(name="held-tasks-labels")
def _label_at_once() -> str:
    start = threading.Barrier(ITEMS)

    def item(n: int) -> None:
        start.wait(timeout=30)
        hold(f"request-{n}", f"task-{n}")

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(item, n))
        for n in range(ITEMS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return str(flow_run.id)


def test_items_labelling_one_run_at_once_lose_no_label() -> None:
    run_id = _label_at_once()
    with get_client(sync_client=True) as client:
        labels = client.read_flow_run(run_id).labels  # type: ignore[arg-type]
    assert held_by(labels) == {f"request-{n}": f"task-{n}" for n in range(ITEMS)}
