"""Validation, auth, query, account, queue, price preview, cancel, concurrency, balance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.testkit import (
    KEY,
    OTHER_KEY,
    QUERY,
    SINGLE,
    SWITCH,
    TASK_KEYS,
    WAN,
    query,
    submit,
    upload,
    wait_terminal,
    wait_until,
)

URL = "https://example.test/in.mp4"  # validation never fetches it
WAN_OK = {"videoUrl": URL, "resolution": "1080P", "duration": "5"}
SINGLE_OK = {"prompt": "p", "videoUrl": URL}
SWITCH_OK = {"prompt": "p", "videoUrl": URL}


def rejected(body: dict[str, Any], code: str) -> None:
    """The v2 refusal shape chosen for the sandbox (see sandbox.wire)."""
    assert set(body) == TASK_KEYS, body
    assert body["taskId"] is None and body["status"] is None and body["results"] is None
    assert body["errorCode"] == code, body
    assert body["errorMessage"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (WAN, {**WAN_OK, "duration": 5}, "duration"),  # a JSON integer: must be "5"
        (WAN, {**WAN_OK, "duration": "16"}, "duration"),
        (WAN, {**WAN_OK, "duration": "1"}, "duration"),
        (WAN, {**WAN_OK, "duration": "5.0"}, "duration"),
        (WAN, {k: v for k, v in WAN_OK.items() if k != "duration"}, "duration"),
        (WAN, {**WAN_OK, "resolution": "4K"}, "resolution"),
        (WAN, {**WAN_OK, "resolution": "720p"}, "resolution"),
        (WAN, {k: v for k, v in WAN_OK.items() if k != "resolution"}, "resolution"),
        (WAN, {**WAN_OK, "prompt": ""}, "prompt"),
        (WAN, {**WAN_OK, "prompt": "x" * 5001}, "prompt"),
        (WAN, {**WAN_OK, "prompt": None}, "prompt"),
        (WAN, {**WAN_OK, "negativePrompt": "x" * 501}, "negativePrompt"),
        (WAN, {**WAN_OK, "audioUrl": "/tmp/a.mp3"}, "audioUrl"),
        (WAN, {**WAN_OK, "promptExtend": "true"}, "promptExtend"),
        (WAN, {**WAN_OK, "seed": -1}, "seed"),
        (WAN, {**WAN_OK, "seed": 2147483648}, "seed"),
        (WAN, {**WAN_OK, "seed": True}, "seed"),
        (WAN, {**WAN_OK, "videoUrl": "file:///tmp/x.mp4"}, "videoUrl"),
        (SINGLE, {"videoUrl": URL}, "prompt"),
        (SINGLE, {"prompt": "p"}, "videoUrl"),
        (SINGLE, {**SINGLE_OK, "duration": "5"}, "duration"),  # strings rejected here
        (SINGLE, {**SINGLE_OK, "duration": 4}, "duration"),
        (SINGLE, {**SINGLE_OK, "duration": 31}, "duration"),
        (SINGLE, {**SINGLE_OK, "duration": 5.0}, "duration"),
        (SWITCH, {**SWITCH_OK, "prompt": "x" * 2049}, "prompt"),
        (SWITCH, {**SWITCH_OK, "duration": 6}, "duration"),
        (SWITCH, {**SWITCH_OK, "duration": 1}, "duration"),
        (SWITCH, {**SWITCH_OK, "cutType": "Dissolve"}, "cutType"),
    ],
)
def test_validation_errors_name_the_field_and_are_not_billed(
    client: httpx.Client, sb: SandboxServer, path: str, body: dict[str, Any], field: str
) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 200
    rejected(resp.json(), "1007")
    assert resp.json()["errorMessage"].startswith(f"{field}: ")
    assert sb.ledger() == []


@pytest.mark.parametrize(
    ("path", "body", "price"),
    [
        (WAN, WAN_OK, "4.25"),
        (WAN, {**WAN_OK, "resolution": "720P", "duration": "15", "seed": 0}, "7.65"),
        (SINGLE, {**SINGLE_OK, "duration": 30}, "9.00"),
        (SWITCH, {**SWITCH_OK, "duration": 2, "cutType": "Shot/Reverse Shot"}, "0.80"),
        (SWITCH, {**SWITCH_OK, "cutType": "Cut Out"}, "2.00"),
    ],
)
def test_valid_bodies_accepted_and_billed_at_price(
    client: httpx.Client, sb: SandboxServer, path: str, body: dict[str, Any], price: str
) -> None:
    body = {**body, "unknownField": 1, "apiKey": KEY}  # ignored, and the key never recorded
    accepted = submit(client, path, body)
    assert accepted["status"] == "QUEUED"
    (entry,) = sb.ledger()
    assert entry["taskId"] == accepted["taskId"] and entry["price"] == price
    assert entry["path"] == path and "apiKey" not in entry["body"]
    assert KEY not in str(entry)
    assert len(entry["key_fingerprint"]) == 12


def test_invalid_key_on_submit_and_query_is_1002(sb: SandboxServer) -> None:
    for headers in ({"Authorization": "Bearer sk-nope"}, {}):
        resp = httpx.post(sb.base_url + SINGLE, json=SINGLE_OK, headers=headers)
        assert resp.status_code == 200
        rejected(resp.json(), "1002")
        assert resp.json()["errorMessage"] == "invalid api key"
        rejected(
            httpx.post(sb.base_url + QUERY, json={"taskId": "1"}, headers=headers).json(), "1002"
        )
    # A key in the body does not replace the Bearer header on v2.
    body_only = httpx.post(sb.base_url + SINGLE, json={**SINGLE_OK, "apiKey": KEY})
    rejected(body_only.json(), "1002")
    assert sb.ledger() == []


def test_query_unknown_or_foreign_task_is_1004(client: httpx.Client, sb: SandboxServer) -> None:
    rejected(query(client, "2013508786110730241"), "1004")
    task_id = submit(client, SINGLE, SINGLE_OK)["taskId"]
    other = httpx.post(
        sb.base_url + QUERY,
        json={"taskId": task_id},
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )
    rejected(other.json(), "1004")


def test_malformed_json_is_http_400_and_unknown_path_404(
    client: httpx.Client, sb: SandboxServer
) -> None:
    for path in (SINGLE, QUERY):
        resp = client.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and "<html>" in resp.text
    assert sb.ledger() == [] and sb.submits_received == 1
    missing = client.get("/openapi/v2/nothing-here")
    assert missing.status_code == 404 and "404 Not Found" in missing.text


def test_lifecycle_history_with_create_phase(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    sb.update_config(create_seconds=0.1, queue_seconds=0.1, run_seconds=0.2)
    url = upload(client, clips["mp4"])
    accepted = submit(client, SINGLE, {"prompt": "p", "videoUrl": url})
    assert accepted["status"] == "CREATE"
    seen = set()

    def done() -> bool:
        status = str(query(client, accepted["taskId"])["status"])
        seen.add(status)
        return status == "SUCCESS"

    wait_until(done)
    assert {"QUEUED", "RUNNING"} <= seen
    view = httpx.get(f"{sb.base_url}/_sandbox/tasks/{accepted['taskId']}").json()
    statuses = [h["status"] for h in view["history"]]
    assert statuses == ["CREATE", "QUEUED", "RUNNING", "SUCCESS"]
    at = {h["status"]: h["at"] for h in view["history"]}
    assert at["SUCCESS"] - at["RUNNING"] >= 0.2 - 0.02
    assert view["input_url"] == url and view["output_path"].endswith(".mp4")
    assert view["added_seconds"] == 5.0


def test_concurrency_limit_1520_then_421(client: httpx.Client, sb: SandboxServer) -> None:
    sb.update_config(concurrency_limit=2, queue_seconds=30)
    for _ in range(2):
        assert submit(client, SINGLE, SINGLE_OK)["status"] == "QUEUED"
    resp = submit(client, SINGLE, SINGLE_OK)
    rejected(resp, "1520")
    assert len(sb.ledger()) == 2
    # Another key has its own budget.
    other = httpx.post(
        sb.base_url + SINGLE, json=SINGLE_OK, headers={"Authorization": f"Bearer {OTHER_KEY}"}
    ).json()
    assert other["status"] == "QUEUED"
    sb.update_config(concurrency_code="421")
    rejected(submit(client, SINGLE, SINGLE_OK), "421")
    queue = client.get("/openapi/v2/queue/status").json()
    assert queue == {
        "code": 0,
        "msg": "success",
        "data": {
            "apiKeyType": "SHARED",
            "concurrentLimit": "2",
            "runningCount": "0",
            "queuedCount": "2",
            "totalCurrentTasks": "2",
        },
    }


def test_queue_status_counts_running(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    sb.update_config(queue_seconds=0, run_seconds=30)
    submit(client, SINGLE, {"prompt": "p", "videoUrl": upload(client, clips["mp4"])})

    def running() -> dict[str, Any] | None:
        data: dict[str, Any] = client.get("/openapi/v2/queue/status").json()["data"]
        return data if data["runningCount"] == "1" else None

    assert wait_until(running)["totalCurrentTasks"] == "1"
    assert httpx.get(sb.base_url + "/openapi/v2/queue/status").json()["code"] == 1002


def test_balance_812_and_account_status(client: httpx.Client, sb: SandboxServer) -> None:
    sb.update_config(balance=5.0, queue_seconds=30)
    submit(client, WAN, WAN_OK)  # 4.25
    rejected(submit(client, WAN, WAN_OK), "812")
    assert len(sb.ledger()) == 1
    account = httpx.post(sb.base_url + "/uc/openapi/accountStatus", json={"apikey": KEY}).json()
    assert account == {
        "code": 0,
        "msg": "success",
        "data": {
            "remainCoins": "177814",
            "currentTaskCounts": "1",
            "remainMoney": "0.75",
            "currency": "CNY",
            "apiType": "NORMAL",
        },
    }
    camel = httpx.post(sb.base_url + "/uc/openapi/accountStatus", json={"apiKey": KEY}).json()
    assert camel["code"] == 0
    bearer = client.post("/uc/openapi/accountStatus", json={}).json()
    assert bearer["code"] == 0
    assert client.post("/uc/openapi/accountStatus").json()["code"] == 0  # no body at all
    bad = httpx.post(sb.base_url + "/uc/openapi/accountStatus", json={"apikey": "x"}).json()
    assert bad == {"code": 802, "msg": "APIKEY_INVALID", "data": None}
    sb.reset()  # restores the configured balance
    assert client.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainMoney"] == "5.00"


def test_price_preview(client: httpx.Client) -> None:
    ok = client.post("/openapi/v2/price-preview/alibaba/wan-2.7/video-extend", json=WAN_OK)
    assert ok.json() == {
        "code": 0,
        "msg": "success",
        "data": {"estimatedPrice": "4.25", "currency": "CNY"},
    }
    sw = client.post(
        "/openapi/v2/price-preview/skyreels-v3/shot-switching-video-extension",
        json={**SWITCH_OK, "duration": 4},
    ).json()
    assert sw["data"]["estimatedPrice"] == "1.60"
    bad = client.post(
        "/openapi/v2/price-preview/alibaba/wan-2.7/video-extend", json={**WAN_OK, "duration": 5}
    ).json()
    assert bad["code"] == 1007 and bad["message"].startswith("duration:")


def test_cancel(client: httpx.Client, sb: SandboxServer) -> None:
    sb.update_config(queue_seconds=30)
    task_id = submit(client, SINGLE, SINGLE_OK)["taskId"]
    cancel = httpx.post(
        sb.base_url + "/task/openapi/cancel", json={"apiKey": KEY, "taskId": task_id}
    ).json()
    assert cancel == {"code": 0, "msg": "success"}
    assert query(client, task_id)["status"] == "CANCEL"
    unknown = httpx.post(
        sb.base_url + "/task/openapi/cancel", json={"apiKey": KEY, "taskId": "123"}
    ).json()
    assert unknown == {"code": 807, "msg": "APIKEY_TASK_NOT_FOUND"}
    again = httpx.post(
        sb.base_url + "/task/openapi/cancel", json={"apiKey": KEY, "taskId": task_id}
    ).json()
    assert again == {"code": 817, "msg": "APIKEY_TASK_CANCEL_NOT_ALLOWED"}  # it has ended
    # The slot is free again, the cancelled task stays billed (no refund) and never gets a result.
    assert len(sb.ledger()) == 1
    assert client.get("/openapi/v2/queue/status").json()["data"]["totalCurrentTasks"] == "0"
    sb.update_config(queue_seconds=0.0, run_seconds=0.0)
    ended = query(client, task_id)
    assert ended["status"] == "CANCEL" and not ended.get("results")


def test_control_api_reset_and_config(client: httpx.Client, sb: SandboxServer) -> None:
    submit(client, SINGLE, SINGLE_OK)
    ledger = httpx.get(sb.base_url + "/_sandbox/ledger").json()
    assert len(ledger["billed"]) == 1 and ledger["submits_received"] == 1
    assert set(ledger["billed"][0]) == {
        "taskId",
        "model",
        "path",
        "body",
        "key_fingerprint",
        "price",
        "billed_at",
    }
    patched = httpx.patch(sb.base_url + "/_sandbox/config", json={"run_seconds": 0.5})
    assert patched.status_code == 200 and patched.json()["run_seconds"] == 0.5
    for bad in ({"nope": 1}, {"run_seconds": "slow"}, {"concurrency_limit": 1.5}):
        assert httpx.patch(sb.base_url + "/_sandbox/config", json=bad).status_code == 400
    assert httpx.post(sb.base_url + "/_sandbox/reset").json() == {"ok": True}
    assert httpx.get(sb.base_url + "/_sandbox/ledger").json() == {
        "billed": [],
        "submits_received": 0,
    }
    assert httpx.get(sb.base_url + "/_sandbox/tasks/1").status_code == 404


def test_fast_task_result_and_terminal_queries_stable(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    sb.update_config(queue_seconds=0, run_seconds=0)
    url = upload(client, clips["mp4"])
    final = wait_terminal(
        client, submit(client, SWITCH, {"prompt": "p", "videoUrl": url, "duration": 2})["taskId"]
    )
    again = query(client, final["taskId"])
    assert again == final
