"""Every fault kind, seen from a plain httpx client."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.testkit import (
    QUERY,
    SINGLE,
    TASK_KEYS,
    UPLOAD,
    query,
    submit,
    upload,
    wait_terminal,
    wait_until,
)

CONNECTION_CUT = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture
def video_url(client: httpx.Client, clips: dict[str, Path]) -> str:
    return upload(client, clips["mp4"])


def body(url: str, prompt: str = "a quiet street") -> dict[str, object]:
    return {"prompt": prompt, "videoUrl": url, "duration": 5}


def test_http_500_html_hits_times_then_recovers(client: httpx.Client, sb: SandboxServer) -> None:
    sb.add_fault("http_500_html", route="query", times=2, params={"status": 503})
    for _ in range(2):
        resp = client.post(QUERY, json={"taskId": "1"})
        assert resp.status_code == 503
        assert resp.headers["content-type"].startswith("text/html")
    assert client.post(QUERY, json={"taskId": "1"}).json()["errorCode"] == "1004"
    (rule,) = sb.faults()
    assert rule["hits"] == 2 and rule["remaining"] == 0


def test_reset_drops_connection_without_response(
    client: httpx.Client, sb: SandboxServer, video_url: str, clips: dict[str, Path]
) -> None:
    sb.add_fault("reset", route="submit")
    with pytest.raises(CONNECTION_CUT):
        client.post(SINGLE, json=body(video_url))
    assert sb.ledger() == [] and sb.submits_received == 1
    sb.add_fault("reset", route="upload")
    with pytest.raises(CONNECTION_CUT):
        client.post(UPLOAD, files={"file": ("a.mp4", clips["mp4"].read_bytes(), "video/mp4")})
    assert submit(client, SINGLE, body(video_url))["status"] == "QUEUED"


def test_http_429_carries_retry_after(client: httpx.Client, sb: SandboxServer) -> None:
    sb.add_fault("http_429", route="any", params={"retry_after": 3})
    resp = client.get("/openapi/v2/queue/status")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert client.get("/openapi/v2/queue/status").status_code == 200


def test_error_code_shapes_per_route(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.add_fault("error_code", route="submit", params={"code": "1003", "message": "rate"})
    resp = submit(client, SINGLE, body(video_url))
    assert set(resp) == TASK_KEYS and "code" not in resp
    assert resp["errorCode"] == "1003" and resp["taskId"] is None and resp["status"] is None
    assert sb.ledger() == []
    sb.add_fault("error_code", route="upload", params={"code": 808, "message": "upload failed"})
    up = client.post(UPLOAD, files={"file": ("a.mp4", b"data", "video/mp4")}).json()
    assert up == {"code": 808, "message": "upload failed"}
    sb.add_fault("error_code", route="account", params={"code": "1011"})
    account = client.post("/uc/openapi/accountStatus", json={}).json()
    assert account["code"] == 1011 and account["data"] is None


def test_lost_response_creates_and_bills_the_task(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.add_fault("lost_response", route="submit")
    with pytest.raises(CONNECTION_CUT):
        client.post(SINGLE, json=body(video_url))
    (entry,) = sb.ledger()
    (task_id,) = sb.state.task_ids()
    assert entry["taskId"] == task_id
    assert wait_terminal(client, task_id)["status"] == "SUCCESS"


def test_error_while_running_targets_one_prompt(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.update_config(run_seconds=0.6)
    sb.add_fault(
        "error_while_running",
        route="task",
        match={"prompt_contains": "chaos"},
        params={"code": "1011", "message": "upstream busy"},
    )
    normal = submit(client, SINGLE, body(video_url, "calm"))["taskId"]
    chaos = submit(client, SINGLE, body(video_url, "chaos monkey"))["taskId"]
    seen = wait_until(
        lambda: (q := query(client, chaos))["status"] == "RUNNING" and q["errorCode"] and q
    )
    assert seen["errorCode"] == "1011" and seen["errorMessage"] == "upstream busy"
    final = wait_terminal(client, chaos)
    assert final["status"] == "FAILED" and final["errorCode"] == "1011"
    assert wait_terminal(client, normal)["status"] == "SUCCESS"


def test_fail_task(client: httpx.Client, sb: SandboxServer, video_url: str) -> None:
    sb.add_fault("fail_task", route="task", params={"message": "model crashed"})
    final = wait_terminal(client, submit(client, SINGLE, body(video_url))["taskId"])
    assert final["status"] == "FAILED" and final["errorCode"] == "1015"
    assert final["failedReason"] == {
        "exception_type": "GenerationError",
        "exception_message": "model crashed",
        "node_name": "VideoExtend",
    }
    assert final["results"] is None
    assert len(sb.ledger()) == 1  # billed all the same


def test_truncate_download_then_range_resume(sb: SandboxServer, video_url: str) -> None:
    full = httpx.get(video_url).content
    sb.add_fault("truncate_download", route="download", params={"bytes": 1000})
    received = bytearray()
    with pytest.raises(CONNECTION_CUT), httpx.stream("GET", video_url) as resp:
        assert resp.headers["content-length"] == str(len(full))
        for chunk in resp.iter_bytes():
            received += chunk
    assert len(received) == 1000
    rest = httpx.get(video_url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert bytes(received) + rest.content == full


def test_expire_urls_fault(sb: SandboxServer, video_url: str) -> None:
    sb.add_fault("expire_urls", route="download")
    resp = httpx.get(video_url)
    assert resp.status_code == 403 and "AccessDenied" in resp.text
    assert httpx.get(video_url).status_code == 200


def test_fetch_route_faults_hit_only_the_sandbox_own_fetch(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.add_fault("expire_urls", route="fetch")
    sb.add_fault("http_500_html", route="download", times=None, match={"task_id": "x"})
    final = wait_terminal(client, submit(client, SINGLE, body(video_url))["taskId"])
    assert final["status"] == "FAILED" and final["errorCode"] == "1013"
    assert "expired" in final["errorMessage"]
    assert httpx.get(video_url).status_code == 200  # the client's download is untouched


def test_slow_request_and_slow_task(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.add_fault("slow", route="query", params={"seconds": 0.6})
    with pytest.raises(httpx.ReadTimeout):
        client.post(QUERY, json={"taskId": "1"}, timeout=0.2)
    started = time.monotonic()
    client.post(QUERY, json={"taskId": "1"})
    assert time.monotonic() - started < 0.5
    sb.add_fault("slow", route="task", params={"seconds": 0.5})
    task_id = submit(client, SINGLE, body(video_url))["taskId"]
    assert wait_terminal(client, task_id)["status"] == "SUCCESS"
    view = sb.task(task_id)
    assert view is not None
    at = {h["status"]: h["at"] for h in view["history"]}
    assert at["SUCCESS"] - at["RUNNING"] >= 0.2 + 0.5 - 0.02


def test_non_json_answer(client: httpx.Client, sb: SandboxServer) -> None:
    sb.add_fault("non_json", route="query")
    resp = client.post(QUERY, json={"taskId": "1"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        resp.json()


def test_match_targets_queries_of_one_task(
    client: httpx.Client, sb: SandboxServer, video_url: str
) -> None:
    sb.update_config(queue_seconds=30)
    calm = submit(client, SINGLE, body(video_url, "calm"))["taskId"]
    chaos = submit(client, SINGLE, body(video_url, "chaos"))["taskId"]
    sb.add_fault("http_500_html", route="query", times=None, match={"prompt_contains": "chaos"})
    assert client.post(QUERY, json={"taskId": calm}).status_code == 200
    assert client.post(QUERY, json={"taskId": chaos}).status_code == 500
    assert client.post(QUERY, json={"taskId": chaos}).status_code == 500
    assert sb.faults()[0]["hits"] == 2 and sb.faults()[0]["remaining"] is None


def test_fault_control_api(sb: SandboxServer) -> None:
    base = sb.base_url + "/_sandbox/faults"
    created = httpx.post(base, json={"kind": "http_429", "route": "submit", "times": 2})
    assert created.status_code == 201 and created.json()["remaining"] == 2
    listed = httpx.get(base).json()["faults"]
    assert [f["kind"] for f in listed] == ["http_429"]
    for bad in (
        {"kind": "explode"},
        {"kind": "fail_task", "route": "download"},
        {"kind": "reset", "route": "nowhere"},
        {"kind": "reset", "times": 0},
        {"kind": "reset", "match": {"color": "red"}},
    ):
        assert httpx.post(base, json=bad).status_code == 400, bad
    assert httpx.delete(base).json() == {"ok": True}
    assert httpx.get(base).json() == {"faults": []}
