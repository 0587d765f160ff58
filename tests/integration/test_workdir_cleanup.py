"""The workdir stays bounded: an archived run keeps no local copy, a failed run keeps its download
for the rerun (which archives without paying again), the sweep at a run's start removes what
failed runs left longer than the retention ago, and a batch removes each item's copies.

Real parts throughout: the sandbox, the S3 server, the session's Prefect API. Each test has a
workdir of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter

from rh_extend import workdir
from rh_extend.errors import ArchiveError
from rh_extend.flows.batch.outcomes import BatchSummary
from rh_extend.flows.extend_batch import extend_batch
from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LocalServers, wait_for
from rh_extend.observe import artifact_key
from rh_extend.request import ExtendRequest
from rh_extend.request_keys import request_key
from rh_extend.storage import Archive
from runninghub import get_model

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "skyreels-v3-shot-switching"  # the shortest output: input + 2 s
DEADLINE_S = 30.0


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "work"
    monkeypatch.setenv("RH_EXTEND_WORKDIR", str(path))
    return path


def _files(root: Path) -> dict[str, int]:
    """Every file under ROOT (workdir-relative) with its size."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _s3_source(stack: LocalServers, prefix: str, clip: Path, name: str = "clip.mp4") -> str:
    key = f"{prefix}/sources/{name}"
    stack.s3().upload_file(str(clip), stack.bucket, key)
    return f"s3://{stack.bucket}/{key}"


def _log_lines(run_id: object, until: str) -> list[str]:
    """The flow run's log messages, once one containing UNTIL arrived (logs come in batches)."""

    def read() -> list[str] | None:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id={"any_": [UUID(str(run_id))]}), limit=200
            )
        lines = [log.message for log in logs]
        return lines if any(until in line for line in lines) else None

    return list(wait_for(f"a log line with {until!r}", read, DEADLINE_S, 0.2))


def _report(run_id: object, key: str) -> str:
    """The run's markdown report (written in the background as the run ends)."""

    def read() -> str | None:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(run_id))]))
            )
        reports = [a for a in found if a.key == artifact_key(key)]
        return str(reports[-1].data) if reports else None

    return str(wait_for("the run's report", read, DEADLINE_S, 0.2))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_an_archived_run_leaves_no_copy_in_the_workdir(
    kind: str, clip: Path, stack: LocalServers, sandbox: Any, s3_prefix: str, work: Path
) -> None:
    source = str(clip) if kind == "local" else _s3_source(stack, s3_prefix, clip)
    clip_sha = _sha256(clip)

    result = extend_video(ExtendRequest(source=source, model=MODEL, prompt="tidy", duration=2))

    assert result.status == "succeeded" and not result.reused_archive
    assert _files(work) == {}
    assert _sha256(clip) == clip_sha  # the user's own file is read, never removed
    copies = 3 if kind == "s3" else 2  # output.mp4 and its contact sheet (+ the staged copy)
    lines = _log_lines(result.flow_run_id, "removed the local copies")
    removed = next(line for line in lines if "removed the local copies" in line)
    assert f": {copies} files, " in removed, removed
    report = _report(result.flow_run_id, str(result.request_key))
    assert f"**Local copies removed** once archived: {copies} files, " in report


def test_a_failed_run_keeps_its_download_and_the_rerun_archives_without_paying(
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    work: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _s3_source(stack, s3_prefix, clip)
    request = ExtendRequest(source=source, model=MODEL, prompt="keep it", duration=2)
    key = request_key(_sha256(clip), MODEL, get_model(MODEL).normalize(request.params()))
    # A foreign object where the output goes: the archive refuses to overwrite it, after the
    # download — a real failure of the archive step.
    archive = Archive(stack.bucket, s3_prefix, client=stack.s3())
    squatter = tmp_path / "other.mp4"
    squatter.write_bytes(b"not this run's video")
    archive.store_file(
        key, "output.mp4", squatter, sha256=_sha256(squatter), content_type="video/mp4"
    )

    with pytest.raises(ArchiveError, match="refusing to overwrite"):
        extend_video(request)

    left = _files(work)
    downloads = [name for name in left if name.endswith("/output.mp4")]
    assert len(downloads) == 1 and downloads[0].startswith(f"runs/{key}/"), left
    assert [name for name in left if name.startswith("sources/")] != [], left
    assert len(sandbox.ledger()) == 1

    stack.s3().delete_object(Bucket=stack.bucket, Key=archive.key(key, "output.mp4"))
    rerun = extend_video(request)

    assert rerun.status == "succeeded" and rerun.request_key == key
    assert [entry["taskId"] for entry in sandbox.ledger()] == [rerun.task_id]  # paid once
    assert _files(work) == left  # the rerun removed its own copies, not the failed run's

    # A day later, the next run's sweep removes what the failed run left (and this run, which
    # finds the request archived, removes its own staged copy).
    for path in work.rglob("*"):
        old = time.time() - 25 * 3600
        os.utime(path, (old, old))
    monkeypatch.setattr(workdir, "_last_sweep", {})
    again = extend_video(request)

    assert again.reused_archive and len(sandbox.ledger()) == 1
    assert _files(work) == {}
    assert list((work / "runs").iterdir()) == []
    lines = _log_lines(again.flow_run_id, "workdir sweep")
    swept = next(line for line in lines if "workdir sweep" in line)
    assert f"removed 2 run folder(s) untouched for 24 h from {work}: {len(left)} files" in swept


@pytest.mark.parametrize("dispatch", ["task", "subflow"])
def test_a_batch_removes_each_items_copies(
    dispatch: str,
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One download fails at once: the download task retries (subflow), or the item's whole chain
    # runs again (task): neither leaves the failed attempt's copies behind.
    monkeypatch.setenv("RH_EXTEND_RETRY_ATTEMPTS", "1")
    sandbox.add_fault("http_500_html", route="download", times=1)
    source = _s3_source(stack, s3_prefix, clip)
    manifest = work.parent / "batch.jsonl"
    lines = [{"source": source, "prompt": f"{dispatch} item {i}"} for i in range(3)]
    manifest.write_text("\n".join(json.dumps(line) for line in lines))

    state = extend_batch(
        manifest=str(manifest),
        model=MODEL,
        params={"duration": 2},
        max_parallel=2,
        dispatch=dispatch,  # type: ignore[arg-type]
        return_state=True,
    )

    summary = state.result()
    assert isinstance(summary, BatchSummary)
    assert [item.status for item in summary.items] == ["archived"] * 3
    assert len(sandbox.ledger()) == 3
    assert [rule["remaining"] for rule in sandbox.faults()] == [0]
    assert _files(work) == {}
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["runs", "sources"]
