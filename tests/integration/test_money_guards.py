"""Budget guard, deliberate new takes, resubmits, the concurrency limit and the poll deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rh_extend.errors import BudgetExceededError
from rh_extend.flows.extend_video import extend_video
from rh_extend.limits import limit_name
from rh_extend.local_servers import LocalServers
from rh_extend.request import ExtendRequest
from rh_extend.settings import load_settings
from rh_extend.storage import Archive
from runninghub import PollTimeoutError, TaskFailedError

pytestmark = pytest.mark.usefixtures("prefect_api")

SHOT = "skyreels-v3-shot-switching"  # sandbox price: 0.40 per second added


def test_over_budget_is_refused_before_submitting(clip: Path, sandbox: Any, s3_prefix: str) -> None:
    with pytest.raises(BudgetExceededError, match=r"estimated price 0\.80 CNY is over max_cost"):
        extend_video(
            ExtendRequest(source=str(clip), model=SHOT, prompt="budget", duration=2, max_cost=0.5)
        )
    assert sandbox.ledger() == []


def test_within_budget_records_preview_and_actual_cost(
    clip: Path, stack: LocalServers, sandbox: Any, s3_prefix: str
) -> None:
    result = extend_video(
        ExtendRequest(source=str(clip), model=SHOT, prompt="budget ok", duration=2, max_cost=1)
    )

    manifest = Archive(stack.bucket, s3_prefix, client=stack.s3()).read_json(
        str(result.request_key), "manifest.json"
    )
    assert manifest is not None
    assert manifest["price_preview"] == {"estimated": 0.8, "currency": "CNY"}
    assert manifest["cost"] == result.cost == 0.8
    assert manifest["usage"]["third_party_consume_money"] == "0.80"


def test_a_new_take_is_a_new_paid_request_and_its_rerun_is_not(
    clip: Path, sandbox: Any, s3_prefix: str
) -> None:
    first = extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="takes", duration=2))
    second = extend_video(
        ExtendRequest(source=str(clip), model=SHOT, prompt="takes", duration=2, take="b")
    )
    again = extend_video(
        ExtendRequest(source=str(clip), model=SHOT, prompt="takes", duration=2, take="b")
    )

    assert first.request_key != second.request_key == again.request_key
    assert again.reused_archive
    assert len(sandbox.ledger()) == 2


def test_failed_task_is_not_paid_again_unless_resubmitted(
    clip: Path, sandbox: Any, s3_prefix: str
) -> None:
    sandbox.add_fault("fail_task", route="task", match={"prompt_contains": "unlucky"})
    with pytest.raises(TaskFailedError, match="1015"):
        extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="unlucky", duration=2))
    with pytest.raises(TaskFailedError, match="1015"):
        extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="unlucky", duration=2))
    assert len(sandbox.ledger()) == 1

    result = extend_video(
        ExtendRequest(source=str(clip), model=SHOT, prompt="unlucky", duration=2), resubmit=True
    )
    assert result.status == "succeeded"
    assert len(sandbox.ledger()) == 2


def test_concurrency_limit_is_sized_from_the_key(clip: Path, sandbox: Any, s3_prefix: str) -> None:
    from prefect.client.orchestration import get_client

    name = limit_name(load_settings())
    extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="slots", duration=2))
    with get_client(sync_client=True) as client:
        held_before = client.read_global_concurrency_limit_by_name(name).active_slots
        extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="slots 2", duration=2))
        limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 3  # the sandbox key's concurrentLimit
    # released after the run (a run killed by another test may still hold a lease meanwhile)
    assert limit.active_slots <= held_before
    assert "sk-" not in limit.name


def test_poll_deadline_cancels_and_says_how_to_go_on(
    clip: Path, sandbox: Any, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RH_EXTEND_POLL_TIMEOUT_S", "1")
    sandbox.add_fault("slow", route="task", params={"seconds": 30})

    with pytest.raises(PollTimeoutError, match="cancel requested") as caught:
        extend_video(ExtendRequest(source=str(clip), model=SHOT, prompt="too slow", duration=2))

    task_id = caught.value.task_id
    assert task_id in str(caught.value)
    assert "rerun the same command" in str(caught.value)
    assert sandbox.task(task_id)["status"] == "CANCEL"
    assert len(sandbox.ledger()) == 1
