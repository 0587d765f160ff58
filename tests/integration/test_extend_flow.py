"""The whole chain over real HTTP: sandbox (RunningHub), moto server (S3), Prefect test harness."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.exceptions import ParameterTypeError

from rh_extend.errors import SourceError, UnresolvedSubmissionError
from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LocalServers
from rh_extend.media import probe
from rh_extend.request import ExtendRequest
from rh_extend.storage import Archive, parse_s3_uri
from runninghub import InputValidationError

pytestmark = pytest.mark.usefixtures("prefect_api")

FRAME = 1 / 24

# (model, flow parameters, expected output length for the 3 s input)
CASES = [
    ("wan-2.7", {"prompt": "keeps scrolling", "duration": 5, "resolution": "720P"}, 5.0),
    ("skyreels-v3-single-shot", {"prompt": "keeps scrolling", "duration": 5}, 8.0),
    (
        "skyreels-v3-shot-switching",
        {"prompt": "cut to a close-up", "duration": 2, "cut_type": "Cut-In"},
        5.0,
    ),
]


def _fetch_object(stack: LocalServers, uri: str, dest: Path) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    s3 = stack.s3()
    s3.download_file(bucket, key, str(dest))
    return dict(s3.head_object(Bucket=bucket, Key=key))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("model", "params", "expected_s"), CASES, ids=[c[0] for c in CASES])
def test_extends_and_archives_each_model(
    model: str,
    params: dict[str, Any],
    expected_s: float,
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    tmp_path: Path,
) -> None:
    result = extend_video(ExtendRequest(source=str(clip), model=model, **params))

    assert result.status == "succeeded"
    assert result.output_uri and result.output_uri.startswith(f"s3://{stack.bucket}/{s3_prefix}/")
    local = tmp_path / "archived.mp4"
    head = _fetch_object(stack, result.output_uri, local)
    assert _sha256(local) == result.output_sha256 == head["Metadata"]["sha256"]
    info = probe(local)
    assert abs(info.duration_s - expected_s) <= FRAME + 1e-6
    assert result.output_duration_s == pytest.approx(info.duration_s, abs=1e-3)

    billed = sandbox.ledger()
    assert [entry["taskId"] for entry in billed] == [result.task_id]

    manifest = Archive(stack.bucket, s3_prefix, client=stack.s3()).read_json(
        str(result.request_key), "manifest.json"
    )
    assert manifest is not None
    assert manifest["task_id"] == result.task_id
    assert manifest["status_history"][-1]["status"] == "SUCCESS"
    assert manifest["input"]["sha256"] == _sha256(clip)
    assert set(manifest["timings_s"]) >= {"stage", "upload", "submit", "poll", "download"}


def test_same_request_twice_is_paid_once(clip: Path, sandbox: Any, s3_prefix: str) -> None:
    params = {"prompt": "again", "duration": 2}
    first = extend_video(
        ExtendRequest(source=str(clip), model="skyreels-v3-shot-switching", **params)
    )
    second = extend_video(
        ExtendRequest(source=str(clip), model="skyreels-v3-shot-switching", **params)
    )

    assert second.reused_archive and not first.reused_archive
    assert second.output_uri == first.output_uri
    assert second.output_sha256 == first.output_sha256
    assert len(sandbox.ledger()) == 1


def test_lost_submit_answer_on_record_stops_without_paying(
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
) -> None:
    from rh_extend.request_keys import request_key
    from runninghub import get_model

    params = get_model("skyreels-v3-shot-switching").normalize({"prompt": "lost", "duration": 2})
    key = request_key(_sha256(clip), "skyreels-v3-shot-switching", params)
    archive = Archive(stack.bucket, s3_prefix, client=stack.s3())
    archive.put_json(key, "submission.json", {"state": "intent", "since": "earlier"})

    with pytest.raises(UnresolvedSubmissionError, match="may exist and be billed"):
        extend_video(
            ExtendRequest(
                source=str(clip), model="skyreels-v3-shot-switching", prompt="lost", duration=2
            )
        )
    assert sandbox.ledger() == []


def test_missing_source_fails_before_any_call(sandbox: Any, s3_prefix: str) -> None:
    with pytest.raises(SourceError, match="no such file"):
        extend_video(ExtendRequest(source="/nonexistent/video.mp4", model="wan-2.7", duration=5))
    assert sandbox.ledger() == []


def test_out_of_range_duration_fails_before_any_call(
    clip: Path,
    sandbox: Any,
    s3_prefix: str,
) -> None:
    """As a deployment run or the UI's form sends it: JSON, validated before the run starts."""
    request = {"source": str(clip), "model": "skyreels-v3-single-shot", "prompt": "x"}
    with pytest.raises(ParameterTypeError, match="less than or equal to 30"):
        extend_video(request={**request, "duration": 99})  # beyond every model's range
    state = extend_video(request={**request, "duration": 4}, return_state=True)  # others' range
    with pytest.raises(ParameterTypeError, match="duration=4 is out of range for skyreels-v3"):
        state.result()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        reports = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    assert [r.description for r in reports if r.type == "markdown"] == [
        "Failed: [ParameterTypeError] Flow run received invalid parameters: - request: Value "
        "error, duration=4 is out of range for skyreels-v3-single-shot: allowed 5 … 30"
    ]
    with pytest.raises(InputValidationError, match="duration=99 is out of range"):
        ExtendRequest.checked(**request, duration=99)  # as the CLI and the receiver build it
    assert sandbox.ledger() == []


def test_s3_source_is_presigned_for_runninghub(
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
) -> None:
    s3 = stack.s3()
    s3.upload_file(str(clip), stack.bucket, "inbox/clip.mp4")

    result = extend_video(
        ExtendRequest(
            source=f"s3://{stack.bucket}/inbox/clip.mp4",
            model="skyreels-v3-shot-switching",
            prompt="from s3",
            duration=3,
        )
    )

    assert result.status == "succeeded"
    assert result.output_duration_s == pytest.approx(6.0, abs=FRAME + 1e-6)
    assert len(sandbox.ledger()) == 1
