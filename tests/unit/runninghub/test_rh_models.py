"""Parsing RunningHub's answers, quirks included, and reading a task's state."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rh_fakes import TASK_ID, success_body, task_body

from runninghub import (
    AccountStatus,
    DownloadResult,
    Failed,
    OutputFile,
    PricePreview,
    ProtocolError,
    Queued,
    QueueStatus,
    Running,
    Succeeded,
    TaskResponse,
    TaskStatus,
    UploadResult,
    Usage,
)

DOC_EXAMPLE: dict[str, object] = {
    "taskId": "2013508786110730241",
    "status": "SUCCESS",
    "errorCode": "",
    "errorMessage": "",
    "failedReason": {},
    "usage": {
        "consumeMoney": None,
        "consumeCoins": None,
        "taskCostTime": "0",
        "thirdPartyConsumeMoney": "4.25",
    },
    "results": [{"url": "https://cdn/output/x.mp4", "outputType": "mp4", "text": None}],
    "clientId": "",
    "promptTips": "",
}


def parse(body: dict[str, object]) -> TaskResponse:
    return TaskResponse.model_validate(body)


def test_documented_example() -> None:
    task = parse(DOC_EXAMPLE)
    assert task.task_id == TASK_ID
    assert task.status is TaskStatus.SUCCESS
    assert task.error_code is None
    assert task.error_message is None
    assert task.failed_reason is None
    assert task.client_id is None
    assert task.results == [
        OutputFile.model_validate({"url": "https://cdn/output/x.mp4", "outputType": "mp4"})
    ]
    assert task.usage is not None
    assert task.usage.cost == Decimal("4.25")
    state = task.state
    assert isinstance(state, Succeeded)
    assert state.outputs[0].url == "https://cdn/output/x.mp4"
    assert state.usage == task.usage


def test_numeric_task_id_becomes_text() -> None:
    # 19-digit ids exceed 2**53: they must survive as exact strings
    assert parse(task_body(taskId=2013508786110730241)).task_id == "2013508786110730241"


@pytest.mark.parametrize("empty", ["", "0", 0, None, " "])
def test_error_code_empty_spellings(empty: object) -> None:
    task = parse(task_body("RUNNING", errorCode=empty))
    assert task.error_code is None
    assert isinstance(task.state, Running)


def test_error_code_numbers_become_text() -> None:
    assert parse(task_body("FAILED", errorCode=1504)).error_code == "1504"
    assert parse(task_body("FAILED", errorCode=" 1015 ")).error_code == "1015"


def test_usage_values_as_strings_numbers_or_null() -> None:
    usage = Usage.model_validate(
        {
            "consumeMoney": 1.5,
            "consumeCoins": 300,
            "taskCostTime": None,
            "thirdPartyConsumeMoney": "",
        }
    )
    assert usage.consume_money == "1.5"
    assert usage.consume_coins == "300"
    assert usage.task_cost_time is None
    assert usage.third_party_consume_money is None
    assert usage.cost == Decimal("1.5")  # falls back to consumeMoney
    assert Usage.model_validate({}).cost is None
    assert Usage.model_validate({"thirdPartyConsumeMoney": "n/a"}).cost is None
    assert parse(task_body(usage=None)).usage is None
    assert parse(task_body(usage={})).usage is None


def test_results_null_and_output_url_fallback() -> None:
    assert parse(task_body(results=None)).results == []
    task = parse(task_body("SUCCESS", results=[{"outputUrl": "https://cdn/o.mp4"}]))
    assert task.results[0].url == "https://cdn/o.mp4"
    assert isinstance(task.state, Succeeded)


def test_failed_reason_object_or_string() -> None:
    reason = {"exception_type": "OOM", "exception_message": "CUDA out of memory", "node_name": "KS"}
    task = parse(task_body("FAILED", failedReason=reason))
    assert task.failed_reason == reason
    state = task.state
    assert isinstance(state, Failed)
    assert state.message == "CUDA out of memory (node KS)"
    assert state.failed_reason == reason

    task = parse(task_body("FAILED", failedReason="worker crashed"))
    assert task.failed_reason == "worker crashed"
    assert task.state == Failed(None, "worker crashed", "worker crashed")

    assert parse(task_body("FAILED", failedReason="")).failed_reason is None


@pytest.mark.parametrize("status", ["CREATE", "QUEUED", "queued"])
def test_pending_states_are_queued(status: str) -> None:
    assert parse(task_body(status)).state == Queued(position=None)


def test_running() -> None:
    assert parse(task_body("RUNNING")).state == Running()


def test_error_code_while_running_is_failed() -> None:
    task = parse(task_body("RUNNING", errorCode="1504", errorMessage="model response timeout"))
    assert task.state == Failed("1504", "model response timeout", None)


def test_error_message_alone_while_running_is_failed() -> None:
    state = parse(task_body("RUNNING", errorMessage="upstream exploded")).state
    assert isinstance(state, Failed)
    assert (state.code, state.message) == (None, "upstream exploded")


def test_success_without_results_is_failed() -> None:
    for results in (None, [], [{"url": None, "outputType": "mp4"}]):
        state = parse(task_body("SUCCESS", results=results)).state
        assert isinstance(state, Failed)
        assert "without any output" in state.message


def test_cancel_is_failed() -> None:
    state = parse(task_body("CANCEL")).state
    assert isinstance(state, Failed)
    assert "cancelled" in state.message


def test_unknown_status_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown task status 'PAUSED'"):
        parse(task_body("PAUSED"))


def test_no_status_and_no_error_has_no_state() -> None:
    with pytest.raises(ProtocolError):
        _ = parse({"taskId": TASK_ID}).state


def test_prompt_tips_object_is_kept_as_text() -> None:
    assert parse(task_body(promptTips={"a": 1})).prompt_tips == '{"a": 1}'


def test_success_fixture_parses() -> None:
    assert isinstance(parse(success_body()).state, Succeeded)


# --- other answers -------------------------------------------------------------------------


@pytest.mark.parametrize("name_key", ["fileName", "filename"])
def test_upload_result_spellings(name_key: str) -> None:
    result = UploadResult.model_validate(
        {
            "type": "video",
            "download_url": "https://cdn/u.mp4",
            name_key: "openapi/ab.mp4",
            "size": "1048576",
        }
    )
    assert result.file_name == "openapi/ab.mp4"
    assert result.size == 1048576
    assert result.download_url == "https://cdn/u.mp4"
    assert result.type == "video"


def test_account_status_strings_and_nulls() -> None:
    account = AccountStatus.model_validate(
        {
            "remainCoins": "177814",
            "currentTaskCounts": "0",
            "remainMoney": "12.34",
            "currency": "CNY",
            "apiType": "NORMAL",
        }
    )
    assert account.remain_coins == 177814
    assert account.current_task_counts == 0
    assert account.remain_money == Decimal("12.34")
    assert (account.currency, account.api_type) == ("CNY", "NORMAL")
    empty = AccountStatus.model_validate(
        {"remainCoins": "", "currentTaskCounts": None, "remainMoney": None, "currency": None}
    )
    assert (empty.remain_coins, empty.current_task_counts, empty.remain_money) == (None, None, None)
    assert AccountStatus.model_validate({"remainCoins": "10.0"}).remain_coins == 10


def test_queue_status_strings() -> None:
    queue = QueueStatus.model_validate(
        {
            "apiKeyType": "SHARED",
            "concurrentLimit": "3",
            "runningCount": "1",
            "queuedCount": "0",
            "totalCurrentTasks": "1",
        }
    )
    assert (queue.api_key_type, queue.concurrent_limit) == ("SHARED", 3)
    assert (queue.running_count, queue.queued_count, queue.total_current_tasks) == (1, 0, 1)
    assert (
        QueueStatus.model_validate({"concurrentLimit": 2, "runningCount": None}).running_count == 0
    )


def test_price_preview_flat_or_enveloped() -> None:
    flat = PricePreview.model_validate({"estimatedPrice": "4.25", "currency": "CNY"})
    wrapped = PricePreview.model_validate(
        {"code": 0, "msg": "success", "data": {"estimatedPrice": 4.25, "currency": "CNY"}}
    )
    assert flat == wrapped
    assert flat.estimated_price == Decimal("4.25")


def test_download_result() -> None:
    result = DownloadResult(path=Path("/tmp/x.mp4"), size=3, sha256="ab")
    assert result.resumed == 0
