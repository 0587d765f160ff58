"""Fast checks of the pipeline's own pieces: no servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from rh_extend.errors import (
    ConfigurationError,
    MediaError,
    SourceError,
    UnresolvedSubmissionError,
    exit_code_for,
)
from rh_extend.flows.extend_video import check_settings
from rh_extend.media import make_sample_clip, probe, sha256_file
from rh_extend.request import ExtendRequest
from rh_extend.request_keys import request_key
from rh_extend.result import ExtendResult
from rh_extend.settings import Settings
from rh_extend.storage import parse_s3_uri
from rh_extend.tasks.download import _extension
from rh_extend.tasks.stage import source_kind
from runninghub import InputValidationError


def test_request_key_is_stable_and_sensitive_to_every_part() -> None:
    base = request_key("a" * 64, "wan-2.7", {"duration": "5", "seed": 1})
    assert base == request_key("a" * 64, "wan-2.7", {"seed": 1, "duration": "5"})
    assert base != request_key("b" * 64, "wan-2.7", {"duration": "5", "seed": 1})
    assert base != request_key("a" * 64, "wan-2.7", {"duration": "5", "seed": 2})
    assert base != request_key("a" * 64, "skyreels-v3-single-shot", {"duration": "5", "seed": 1})


def test_wire_params_use_wire_names_and_drop_unset() -> None:
    request = ExtendRequest(source="a.mp4", model="wan-2.7", prompt="p", negative_prompt="n")
    assert request.wire_params() == {"prompt": "p", "negativePrompt": "n"}


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"runninghub_api_key": None}, "RUNNINGHUB_API_KEY"),
        ({"s3_bucket": None}, "RH_EXTEND_S3_BUCKET"),
        ({"runninghub_base_url": "http://example.test"}, "RUNNINGHUB_ALLOW_HTTP"),
    ],
)
def test_check_settings_names_the_missing_setting(
    overrides: dict[str, object], needle: str
) -> None:
    values = {
        "runninghub_api_key": "k",
        "s3_bucket": "b",
        "runninghub_base_url": "https://www.runninghub.ai",
        "runninghub_allow_http": False,
        **overrides,
    }
    with pytest.raises(ConfigurationError, match=needle):
        check_settings(Settings(_env_file=None, **values))


def test_exit_codes() -> None:
    assert exit_code_for(InputValidationError("bad", field="duration", value=99)) == 2
    assert exit_code_for(SourceError("x")) == 2
    assert exit_code_for(ConfigurationError("x")) == 2
    assert exit_code_for(UnresolvedSubmissionError("k", "s3://b/k", "t")) == 1
    assert exit_code_for(RuntimeError("x")) == 1


def test_json_line_has_exactly_the_scripting_keys() -> None:
    line = ExtendResult(
        status="failed", model="wan-2.7", presigned_url="x", flow_run_id="y"
    ).json_line()
    assert set(line) == {
        "status",
        "request_key",
        "task_id",
        "model",
        "output_uri",
        "manifest_uri",
        "output_sha256",
        "output_duration_s",
        "cost",
        "error",
    }


def test_output_extension_never_comes_from_untrusted_text() -> None:
    assert _extension("mp4") == "mp4"
    assert _extension("../../etc/passwd") == "mp4"
    assert _extension(None) == "mp4"


def test_source_kinds_and_s3_uris() -> None:
    assert source_kind("s3://b/k.mp4") == "s3"
    assert source_kind("https://x/y.mp4") == "https"
    assert source_kind("clips/a.mp4") == "local"
    assert parse_s3_uri("s3://bucket/a/b.mp4") == ("bucket", "a/b.mp4")
    with pytest.raises(ValueError):
        parse_s3_uri("s3://bucket")


def test_probe_and_hash_a_real_clip(tmp_path: Path) -> None:
    clip = make_sample_clip(tmp_path / "c.mp4", seconds=1.0, width=64, height=48, fps=12)
    info = probe(clip)
    assert (info.container, info.width, info.height, info.frames) == ("mp4", 64, 48, 12)
    assert info.duration_s == pytest.approx(1.0)
    assert len(sha256_file(clip)) == 64


def test_probe_rejects_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError, match="not a decodable video"):
        probe(bogus)


def test_plain_json_parameters_go_as_they_are_and_the_rest_the_prefect_way() -> None:
    from enum import StrEnum

    from prefect import flow
    from pydantic import BaseModel

    from rh_extend.prefect_internals import plain_json_parameters

    class Colour(StrEnum):
        RED = "red"

    @flow
    def echo(value: object = None) -> object:
        return value

    handed_to_prefect: list[dict[str, object]] = []

    def prefect_way(parameters: dict[str, object]) -> dict[str, object]:
        handed_to_prefect.append(parameters)
        return {"via": "prefect"}

    echo.serialize_parameters = prefect_way  # type: ignore[method-assign]
    plain_json_parameters(echo)
    plain = {"source": "a.mp4", "duration": 2, "max_cost": 1.5, "resubmit": False, "take": None,
             "params": {"seed": [1, 2], "prompt": "x"}}  # fmt: skip
    assert echo.serialize_parameters(plain) == plain and handed_to_prefect == []
    class Request(BaseModel):
        source: str
        seed: int | None = None

    as_json = {"request": {"source": "a.mp4", "seed": None}, "takes": [{"source": "b", "seed": 1}]}
    models = {"request": Request(source="a.mp4"), "takes": [Request(source="b", seed=1)]}
    assert echo.serialize_parameters(models) == as_json and handed_to_prefect == []
    for odd in (Path("/a.mp4"), Colour.RED, (1, 2), {1: "int key"}):
        assert echo.serialize_parameters({"value": odd}) == {"via": "prefect"}
    assert len(handed_to_prefect) == 4


def test_a_direct_runs_model_tag_stays_on_the_run_not_its_task_runs() -> None:
    from prefect import tags
    from prefect.context import TagsContext

    from rh_extend.flows.direct import untagged_task_runs

    with tags("model:wan-2.7", "team-a"):  # as direct_run tags a run at its creation
        with untagged_task_runs("wan-2.7"):
            assert TagsContext.get().current_tags == {"team-a"}
        assert TagsContext.get().current_tags == {"model:wan-2.7", "team-a"}
    with tags("team-a"), untagged_task_runs("wan-2.7"):  # a run nobody tagged: left alone
        assert TagsContext.get().current_tags == {"team-a"}
