"""In-process units: multipart parser, Range parsing, validation table, fault engine, config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from sandbox.faults import FaultContext, FaultEngine, FaultSpecError
from sandbox.files import Unsatisfiable, parse_range
from sandbox.models_table import SKYREELS_SWITCH, WAN_27, model_for_path, model_for_price_preview
from sandbox.upload_parser import MultipartError, TooLarge, save_file_field
from sandbox.validation import FieldError, validate_submit

B = b"xyzBOUNDARY"
CT = "multipart/form-data; boundary=xyzBOUNDARY"


def body_with(payload: bytes, ending: bytes = b"\r\n--" + B + b"--\r\n") -> bytes:
    return (
        b"preamble to ignore\r\n--" + B + b"\r\n"
        b'Content-Disposition: form-data; name="meta"\r\n\r\n{"a": 1}\r\n--' + B + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="v.mov"\r\n'
        b"Content-Type: video/quicktime\r\n\r\n" + payload + ending
    )


def parse(data: bytes, dest: Path, step: int, max_bytes: int = 10**9) -> object:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), step):
            yield data[i : i + step]

    return asyncio.run(save_file_field(chunks(), CT, dest, max_bytes=max_bytes))


@pytest.mark.parametrize("step", [1, 3, 13, 4096])
@pytest.mark.parametrize(
    "ending",
    [b"\r\n--" + B + b"--\r\n", b"\r\n--" + B + b"--", b"\r\n--" + B, b"\r\n--" + B + b"\r\n"],
)
def test_parser_any_chunking_and_lenient_endings(tmp_path: Path, step: int, ending: bytes) -> None:
    payload = b"\r\n--xyzBOUNDAR\r\n-- almost a boundary \r\n" * 20 + bytes(range(256))
    result = parse(body_with(payload, ending), tmp_path / "out", step)
    assert result is not None
    assert (tmp_path / "out").read_bytes() == payload
    assert result.filename == "v.mov" and result.content_type == "video/quicktime"  # type: ignore[attr-defined]


def test_parser_rejects_truncation_and_enforces_limit(tmp_path: Path) -> None:
    with pytest.raises(MultipartError):
        parse(body_with(b"data", ending=b""), tmp_path / "a", 5)
    assert not (tmp_path / "a").exists()
    with pytest.raises(TooLarge):
        parse(body_with(b"x" * 100), tmp_path / "b", 7, max_bytes=99)
    assert not (tmp_path / "b").exists()


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=5-1000", 100) == (5, 99)
    assert parse_range("items=0-1", 100) is None
    for bad in ("bytes=100-", "bytes=9-3", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)


def test_validation_defaults_and_prices() -> None:
    params = validate_submit(SKYREELS_SWITCH, {"prompt": "p", "videoUrl": "https://a/b.mp4"})
    assert params["duration"] == 5 and params["cutType"] == "Auto"
    assert SKYREELS_SWITCH.price(params) == Decimal("2.00")
    wan = validate_submit(
        WAN_27,
        {"videoUrl": "http://a/b.mov", "resolution": "720P", "duration": "10", "apiKey": "sk"},
    )
    assert "apiKey" not in wan and wan["promptExtend"] is True
    assert WAN_27.price(wan) == Decimal("5.10")
    with pytest.raises(FieldError) as err:
        validate_submit(WAN_27, {**wan, "duration": 10})
    assert err.value.field == "duration"
    with pytest.raises(FieldError):
        validate_submit(WAN_27, ["not", "an", "object"])


def test_model_lookup() -> None:
    assert model_for_path("/openapi/v2/wan-2.7/video-extend") is WAN_27
    assert model_for_path("/openapi/v2/alibaba/wan-2.7/video-extend/") is WAN_27
    assert model_for_price_preview("skyreels-v3/shot-switching-video-extension") is SKYREELS_SWITCH
    assert model_for_path("/openapi/v2/unknown") is None


def test_fault_engine_order_times_and_match() -> None:
    engine = FaultEngine()
    engine.add({"kind": "http_429", "route": "query", "times": 1})
    engine.add(
        {"kind": "reset", "route": "any", "times": None, "match": {"prompt_contains": "boom"}}
    )
    engine.add({"kind": "fail_task", "times": 1})
    calm, boom = FaultContext(prompt="calm"), FaultContext(prompt="boom!")
    first = engine.take("query", calm)
    assert first is not None and first.kind == "http_429"
    assert engine.take("query", calm) is None  # exhausted; the reset rule needs "boom"
    hit = engine.take("upload", boom)
    assert hit is not None and hit.kind == "reset"
    assert engine.take("fetch", boom) is None  # "any" never covers the sandbox's own fetch
    assert [r.kind for r in engine.take_all("task", boom)] == ["fail_task"]
    assert engine.take_all("task", boom) == []
    with pytest.raises(FaultSpecError):
        engine.add({"kind": "lost_response", "route": "query"})


def test_config_update_is_checked_and_atomic() -> None:
    cfg = SandboxConfig(api_keys=["k"])  # type: ignore[arg-type]
    assert cfg.api_keys == {"k"}
    cfg.update({"run_seconds": 1, "balance": None, "concurrency_code": 421})
    assert cfg.run_seconds == 1.0 and cfg.concurrency_code == "421"
    with pytest.raises(ValueError, match="queue_seconds"):
        cfg.update({"queue_seconds": "x", "run_seconds": 9})
    assert cfg.run_seconds == 1.0
    with pytest.raises(ValueError):
        cfg.update({"wan_duration_semantics": "sideways"})
    assert "k" not in str(cfg.public_view()["api_keys"])
