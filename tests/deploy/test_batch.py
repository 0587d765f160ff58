"""(d) A batch of 10 through the served extend-batch deployment, 2 of them failing on RunningHub:
8 archived, 2 failed with their causes, the batch Completed with the failures listed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rh_extend.local_servers import LocalServers


def test_batch_of_ten_with_two_failures(
    served: Any, stack: LocalServers, sandbox: Any, clip: Path, tmp_path: Path
) -> None:
    api = served.api
    failing = {3, 8}
    sandbox.add_fault("fail_task", route="task", times=None, match={"prompt_contains": "FAIL-ME"})
    lines = [
        {"source": str(clip), "prompt": f"batch item {i}" + (" FAIL-ME" if i in failing else "")}
        for i in range(1, 11)
    ]
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    deployment = served.deployments["extend-batch"]
    started = time.monotonic()
    run = api.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {
            "parameters": {
                "manifest": str(manifest),
                "model": "skyreels-v3-shot-switching",
                "params": {"duration": 2},
                "max_parallel": 4,
            },
            "idempotency_key": f"test-batch-{manifest}",  # a retried POST makes no second run
        },
    )
    run = api.wait_final(run["id"], timeout_s=180)
    took = time.monotonic() - started

    assert run["state"]["type"] == "COMPLETED", run["state"]
    message = run["state"]["message"]
    assert "10 items: 8 archived" in message and "2 failed" in message, message
    rows = api.table(run["id"], "extend-batch-items")
    by_status: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    assert {k: len(v) for k, v in by_status.items()} == {"archived": 8, "failed": 2}
    assert sorted(row["item"] for row in by_status["failed"]) == ["line-3-clip", "line-8-clip"]
    for row in by_status["failed"]:
        assert "TaskFailedError" in row["cause"] and "1015" in row["cause"], row
        assert row["item"] in message  # the state message names the failures
    s3 = stack.s3()
    for row in by_status["archived"]:
        assert row["output"].startswith(f"s3://{stack.bucket}/{served.prefix}/")
        manifest_key = f"{served.prefix}/{row['request_key']}/manifest.json"
        archived = json.loads(s3.get_object(Bucket=stack.bucket, Key=manifest_key)["Body"].read())
        assert archived["task_id"] == row["task_id"]
    assert len(sandbox.ledger()) == 10  # the failed tasks ran (and were billed) once each

    finished = api.wait_for(
        "the batch-finished event",
        lambda: [
            e
            for e in api.events("rh-extend.batch.finished")
            if e["resource"]["prefect.resource.id"] == f"rh-extend.batch.{run['id']}"
        ],
        30,
    )
    assert finished[0]["payload"]["failed"] == 2 and finished[0]["payload"]["archived"] == 8
    print(
        f"\n(d) batch run {run['id']}: {message[:60]}… in {took:.1f} s; failed: "
        + "; ".join(f"{r['item']} ({r['cause'][:60]}…)" for r in by_status["failed"])
    )


def test_batch_dispatching_deployment_runs_reads_their_results(
    served: Any, stack: LocalServers, sandbox: Any, clip: Path, tmp_path: Path
) -> None:
    """dispatch=deployment: each item is a run of extend-video (what workers of a pool share)."""
    api = served.api
    lines = [
        {"source": str(clip), "prompt": "dispatched one"},
        {"source": str(clip), "prompt": "dispatched two", "params": {"duration": 3}},
        {"source": str(clip), "prompt": "dispatched one"},  # the same request again
    ]
    manifest = tmp_path / "dispatch.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    deployment = served.deployments["extend-batch"]
    run = api.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {
            "parameters": {
                "manifest": str(manifest),
                "model": "skyreels-v3-shot-switching",
                "params": {"duration": 2},
                "dispatch": "deployment",
            },
            "idempotency_key": f"test-dispatch-{manifest}",
        },
    )
    run = api.wait_final(run["id"], timeout_s=180)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    rows = {row["item"]: row for row in api.table(run["id"], "extend-batch-items")}
    assert [row["status"] for row in rows.values()] == ["archived", "archived", "duplicate"]
    children = api.runs_where(served.deployments["extend-video"]["id"])
    mine = [c for c in children if c["parameters"]["request"]["prompt"].startswith("dispatched")]
    assert len(mine) == 2
    for child in mine:
        assert child["idempotency_key"].startswith(f"rh-extend-batch {run['id']} item ")
        row = next(r for r in rows.values() if r["flow_run_id"] == child["id"])
        assert row["output"].startswith(f"s3://{stack.bucket}/{served.prefix}/")  # its result
    assert len(sandbox.ledger()) == 2
    print(f"\n(d2) dispatch=deployment batch {run['id']}: children {[c['id'] for c in mine]}")
