"""Each model end to end over HTTP: upload -> submit -> poll -> download -> decode."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.testkit import (
    SINGLE,
    SWITCH,
    TASK_KEYS,
    WAN,
    WAN_ALIAS,
    decode_info,
    download,
    submit,
    upload,
    wait_terminal,
)

INPUT_FRAMES, FPS = 24, Fraction(12)  # the 2 s clips from conftest


def run_to_success(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    accepted = submit(client, path, body)
    assert set(accepted) == TASK_KEYS
    assert "code" not in accepted  # v2 bodies never carry the legacy envelope's code
    assert accepted["status"] in ("QUEUED", "RUNNING") and accepted["results"] is None
    assert accepted["errorCode"] == "" and accepted["errorMessage"] == ""
    task_id = accepted["taskId"]
    assert isinstance(task_id, str) and task_id.isdigit() and len(task_id) == 19
    final = wait_terminal(client, task_id)
    assert final["status"] == "SUCCESS", final
    return final


def output_frames(final: dict[str, Any], tmp_path: Path) -> tuple[int, Fraction, int, int, bool]:
    (result,) = final["results"]
    assert result["outputType"] == "mp4" and result["text"] is None
    return decode_info(download(result["url"], tmp_path / "out.mp4"))


@pytest.mark.parametrize("path", [WAN, WAN_ALIAS])
@pytest.mark.parametrize("clip", ["mp4", "mov"])
def test_wan_duration_is_total_length(
    client: httpx.Client, clips: dict[str, Path], tmp_path: Path, path: str, clip: str
) -> None:
    url = upload(client, clips[clip])
    body = {"videoUrl": url, "resolution": "1080P", "duration": "5", "prompt": "a calm lake"}
    final = run_to_success(client, path, body)
    assert final["usage"]["thirdPartyConsumeMoney"] == "4.25"
    assert isinstance(final["usage"]["taskCostTime"], str)
    frames, fps, width, height, _ = output_frames(final, tmp_path)
    assert fps == FPS and (width, height) == (160, 120)
    assert abs(frames / fps - 5) <= 1 / fps  # total output = duration, within one frame


def test_skyreels_single_shot_adds_duration(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path], tmp_path: Path
) -> None:
    url = upload(client, clips["audio"])  # an audio track in the input is fine (dropped)
    final = run_to_success(client, SINGLE, {"prompt": "the camera pans", "videoUrl": url})
    assert final["usage"]["thirdPartyConsumeMoney"] == "1.50"  # default duration 5
    frames, fps, *_, has_audio = output_frames(final, tmp_path)
    assert abs(frames / fps - (2 + 5)) <= 1 / fps
    assert not has_audio
    view = sb.task(final["taskId"])
    assert view is not None and view["added_frames"] == 60 and view["input_frames"] == 24


def test_skyreels_shot_switching_adds_duration(
    client: httpx.Client, clips: dict[str, Path], tmp_path: Path
) -> None:
    url = upload(client, clips["mp4"])
    body = {"prompt": "cut to a close-up", "videoUrl": url, "duration": 3, "cutType": "Cut-In"}
    final = run_to_success(client, SWITCH, body)
    assert final["usage"]["thirdPartyConsumeMoney"] == "1.20"
    frames, fps, *_ = output_frames(final, tmp_path)
    assert abs(frames / fps - (2 + 3)) <= 1 / fps


def test_extension_frames_are_visibly_different(
    client: httpx.Client, clips: dict[str, Path], tmp_path: Path
) -> None:
    """The junction is visible: the first added frame differs clearly from the last input
    frame, and added frames keep moving."""
    import av
    import numpy as np

    url = upload(client, clips["mp4"])
    final = run_to_success(client, SWITCH, {"prompt": "p", "videoUrl": url, "duration": 2})
    path = download(final["results"][0]["url"], tmp_path / "o.mp4")
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    last_in, first_added = frames[INPUT_FRAMES - 1], frames[INPUT_FRAMES]
    assert np.abs(first_added - last_in).mean() > 20
    assert np.abs(frames[INPUT_FRAMES - 2] - last_in).mean() < 20  # input itself is smooth
    assert np.abs(frames[-1] - frames[-5]).mean() > 5  # motion in the extension


def test_skyreels_rejects_mov_container_at_run_time(
    client: httpx.Client, clips: dict[str, Path]
) -> None:
    # Named .mp4 but really QuickTime: detection is by content, not by extension.
    url = upload(client, clips["mov"], name="looks-like.mp4")
    accepted = submit(client, SINGLE, {"prompt": "p", "videoUrl": url})
    final = wait_terminal(client, accepted["taskId"])
    assert final["status"] == "FAILED"
    assert final["errorCode"] == "1013"
    assert final["failedReason"]["node_name"] == "VideoLoader"
    assert "mov" in final["failedReason"]["exception_message"]
    assert final["results"] is None


def test_wan_duration_not_longer_than_input_fails_1007(
    client: httpx.Client, clips: dict[str, Path]
) -> None:
    url = upload(client, clips["mp4"])  # 2 s long
    accepted = submit(client, WAN, {"videoUrl": url, "resolution": "720P", "duration": "2"})
    final = wait_terminal(client, accepted["taskId"])
    assert final["status"] == "FAILED" and final["errorCode"] == "1007"
    assert "exceed" in final["errorMessage"] and "duration" in final["errorMessage"]


def test_wan_added_semantics_setting(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path], tmp_path: Path
) -> None:
    sb.update_config(wan_duration_semantics="added")
    url = upload(client, clips["mp4"])
    body = {"videoUrl": url, "resolution": "720P", "duration": "2"}
    final = run_to_success(client, WAN, body)
    frames, fps, *_ = output_frames(final, tmp_path)
    assert abs(frames / fps - 4) <= 1 / fps


@pytest.mark.parametrize(
    ("make_url", "needle"),
    [
        (lambda base: base + "/files/nope/missing.mp4", "404"),
        (lambda base: "http://127.0.0.1:9/closed.mp4", "fetch"),
    ],
    ids=["http-404", "unreachable"],
)
def test_unfetchable_input_fails_1013(
    client: httpx.Client, sb: SandboxServer, make_url: Any, needle: str
) -> None:
    accepted = submit(client, SINGLE, {"prompt": "p", "videoUrl": make_url(sb.base_url)})
    final = wait_terminal(client, accepted["taskId"])
    assert final["status"] == "FAILED" and final["errorCode"] == "1013"
    reason = final["failedReason"]
    assert set(reason) >= {"exception_type", "exception_message", "node_name"}
    assert reason["node_name"] == "VideoLoader" and needle in final["errorMessage"]


def test_not_a_video_fails_1013(client: httpx.Client, clips: dict[str, Path]) -> None:
    url = upload(client, clips["junk"])
    final = wait_terminal(
        client, submit(client, SINGLE, {"prompt": "p", "videoUrl": url})["taskId"]
    )
    assert final["status"] == "FAILED" and final["errorCode"] == "1013"


def test_oversize_input_fails_1013(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    url = upload(client, clips["mp4"])
    sb.update_config(max_input_bytes=1000)
    final = wait_terminal(
        client, submit(client, SINGLE, {"prompt": "p", "videoUrl": url})["taskId"]
    )
    assert final["status"] == "FAILED" and final["errorCode"] == "1013"
    assert "larger than" in final["errorMessage"]


def test_expired_input_link_fails_1013(
    client: httpx.Client, sb: SandboxServer, clips: dict[str, Path]
) -> None:
    url = upload(client, clips["mp4"])
    sb.update_config(url_ttl_seconds=0)
    final = wait_terminal(
        client, submit(client, SINGLE, {"prompt": "p", "videoUrl": url})["taskId"]
    )
    assert final["status"] == "FAILED" and "403" in final["errorMessage"]


def test_result_link_ignores_spoofed_host(sb: SandboxServer, clips: dict[str, Path]) -> None:
    spoof = {"Authorization": "Bearer sk-sandbox-0001", "Host": "www.runninghub.cn"}
    with httpx.Client(base_url=sb.base_url, headers=spoof) as client:
        url = upload(client, clips["mp4"])
        final = run_to_success(client, SINGLE, {"prompt": "p", "videoUrl": url})
    assert final["results"][0]["url"].startswith(sb.base_url + "/files/")
