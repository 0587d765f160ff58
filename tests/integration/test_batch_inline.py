"""`extend_batch(dispatch="task")`: each video's chain inline, one task run per video, no
subflows — with the same outcomes, money guards and failure reports as the subflow dispatch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
)

from rh_extend.flows.batch.outcomes import BatchSummary
from rh_extend.flows.extend_batch import extend_batch
from rh_extend.local_servers import LocalServers, wait_for
from rh_extend.observe import artifact_key
from rh_extend.storage import Archive

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "skyreels-v3-shot-switching"


def _wait_for(what: str, probe: Any, timeout_s: float = 30.0) -> Any:
    """Task runs and artifacts reach the API asynchronously (events): poll with a deadline."""
    return wait_for(what, probe, timeout_s, every_s=0.2)


def _inline_task_runs(batch_run_id: UUID, count: int) -> list[Any]:
    def finished() -> list[Any] | None:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[batch_run_id])),
                task_run_filter=TaskRunFilter(),
            )
        inline = [r for r in runs if r.task_key.startswith("extend_inline")]
        done = [r for r in inline if r.state and r.state.is_final()]
        return done if len(done) == count else None

    return list(_wait_for("the inline task runs", finished))


def test_inline_batch_archives_retries_and_reports(
    clip: Path,
    sandbox: Any,
    stack: LocalServers,
    s3_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RH_EXTEND_RETRY_ATTEMPTS", "1")  # the client gives up on the first 5xx…
    sandbox.add_fault("http_500_html", route="upload", times=2)  # …so the item task retries
    sandbox.add_fault("fail_task", route="task", times=None, match={"prompt_contains": "FAIL-ME"})
    prompts = [f"inline item {i}" for i in range(1, 6)]
    prompts[3] += " FAIL-ME"
    manifest = tmp_path / "inline.jsonl"
    manifest.write_text("\n".join(json.dumps({"source": str(clip), "prompt": p}) for p in prompts))

    state = extend_batch(
        manifest=str(manifest),
        model=MODEL,
        params={"duration": 2},
        max_parallel=3,
        dispatch="task",
        return_state=True,
    )

    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, BatchSummary), summary
    assert state.is_completed(), state.message
    statuses = {item.label: item.status for item in summary.items}
    assert statuses == {
        "line-1-clip": "archived",
        "line-2-clip": "archived",
        "line-3-clip": "archived",
        "line-4-clip": "failed",
        "line-5-clip": "archived",
    }
    failed = next(item for item in summary.items if item.status == "failed")
    assert failed.error_type == "TaskFailedError" and "1015" in str(failed.cause)
    assert len(sandbox.ledger()) == 5  # one billed submit per request, retried items included
    assert [f["remaining"] for f in sandbox.faults() if f["route"] == "upload"] == [0]

    archive = Archive(stack.bucket, s3_prefix, client=stack.s3())
    for item in summary.items:
        assert item.flow_run_id == str(state.state_details.flow_run_id)
        if item.status == "archived":
            manifest_doc = archive.read_json(str(item.request_key), "manifest.json")
            assert manifest_doc is not None and manifest_doc["task_id"] == item.task_id

    batch_run_id = state.state_details.flow_run_id
    task_runs = _inline_task_runs(batch_run_id, 5)
    assert sorted(r.name for r in task_runs) == sorted(statuses)
    # the two upload failures cost two reruns of a chain, whichever items drew them
    assert sum(r.run_count - 1 for r in task_runs) == 2, [(r.name, r.run_count) for r in task_runs]
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["extend-video"])),
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[batch_run_id])
            ),
        )
    assert subflows == []

    def failure_reports() -> list[Any]:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[batch_run_id]))
            )
        return [a for a in found if "FAIL-ME" in str(a.data) and a.type == "markdown"]

    report = _wait_for("the failure report", failure_reports)[0]
    assert "1015" in str(report.data) and "TaskFailedError" in str(report.data)
    by_key = {a.key for a in _wait_for("the run reports", lambda: _reports(batch_run_id, 4))}
    archived = [i for i in summary.items if i.status == "archived"]
    assert {artifact_key(str(i.request_key)) for i in archived} <= by_key


def _reports(batch_run_id: UUID, count: int) -> list[Any] | None:
    """The archived items' markdown reports, all attached to the batch's run."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[batch_run_id])),
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="extend-")),
        )
    reports = [a for a in found if a.type == "markdown" and "Extended with" in str(a.description)]
    return reports if len(reports) >= count else None
