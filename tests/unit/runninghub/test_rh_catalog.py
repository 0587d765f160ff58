"""The model catalog: parameters, defaults, aliases, limits and their messages."""

from __future__ import annotations

import json

import pytest

from runninghub import CATALOG, InputValidationError, ModelSpec, get_model

WAN = get_model("wan-2.7")
SINGLE = get_model("skyreels-v3-single-shot")
SWITCH = get_model("skyreels-v3-shot-switching")


def problem(spec: ModelSpec, params: dict[str, object]) -> InputValidationError:
    with pytest.raises(InputValidationError) as caught:
        spec.normalize(params)
    return caught.value


# --- the table itself ----------------------------------------------------------------------


def test_catalog_lists_the_three_models_in_order() -> None:
    assert list(CATALOG) == ["wan-2.7", "skyreels-v3-single-shot", "skyreels-v3-shot-switching"]
    assert WAN.path == "/openapi/v2/alibaba/wan-2.7/video-extend"
    assert WAN.alternate_paths == ("/openapi/v2/wan-2.7/video-extend",)
    assert SINGLE.path == "/openapi/v2/skyreels-v3/single-shot-video-extension"
    assert SWITCH.path == "/openapi/v2/skyreels-v3/shot-switching-video-extension"
    assert WAN.input_formats == ("mp4", "mov")
    assert SINGLE.input_formats == SWITCH.input_formats == ("mp4",)
    assert {spec.max_input_bytes for spec in CATALOG.values()} == {100 * 1024 * 1024}
    assert (WAN.duration_semantics, SINGLE.duration_semantics) == ("total", "added")
    assert (WAN.typical_seconds, SINGLE.typical_seconds, SWITCH.typical_seconds) == (180, 240, 150)


def test_catalog_and_aliases_are_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOG["x"] = WAN  # type: ignore[index]
    with pytest.raises(TypeError):
        SWITCH.field("cutType").aliases["Cut Up"] = "Cut-In"  # type: ignore[index]


def test_get_model_unknown_lists_known_ids() -> None:
    with pytest.raises(InputValidationError) as caught:
        get_model("wan-9")
    assert caught.value.field == "model"
    assert caught.value.value == "wan-9"
    for model_id in CATALOG:
        assert model_id in str(caught.value)
        assert model_id in caught.value.allowed


def test_field_lookup() -> None:
    assert WAN.field("duration").kind == "int_as_str"
    with pytest.raises(InputValidationError, match=r"unknown parameter 'cutType' for wan-2\.7"):
        WAN.field("cutType")


# --- Wan 2.7 -------------------------------------------------------------------------------


def test_wan_defaults_and_duration_as_string() -> None:
    assert WAN.normalize({}) == {"duration": "5", "resolution": "1080P"}
    assert WAN.normalize({"duration": 10})["duration"] == "10"
    assert WAN.normalize({"duration": "12"})["duration"] == "12"
    assert WAN.normalize({"duration": " 7 "})["duration"] == "7"
    assert WAN.normalize({"duration": 9.0})["duration"] == "9"


@pytest.mark.parametrize("duration", [1, 16, "0", "20"])
def test_wan_duration_out_of_range(duration: object) -> None:
    error = problem(WAN, {"duration": duration})
    assert error.field == "duration"
    assert error.allowed == "2 … 15"
    assert f"duration={int(str(duration))} is out of range for wan-2.7: allowed 2 … 15" == str(
        error
    )


@pytest.mark.parametrize("duration", ["five", 5.5, True, [5]])
def test_wan_duration_not_a_whole_number(duration: object) -> None:
    error = problem(WAN, {"duration": duration})
    assert error.field == "duration"
    assert "is not a whole number" in str(error)


def test_wan_resolution_case_insensitive_and_choices() -> None:
    assert WAN.normalize({"resolution": "720p"})["resolution"] == "720P"
    assert WAN.normalize({"resolution": "1080P"})["resolution"] == "1080P"
    error = problem(WAN, {"resolution": "4K"})
    assert error.field == "resolution"
    assert error.allowed == "720P, 1080P"
    assert str(error) == "resolution='4K' is not a valid choice for wan-2.7: allowed 720P, 1080P"


def test_wan_empty_prompt_is_omitted_not_sent() -> None:
    assert "prompt" not in WAN.normalize({"prompt": ""})
    assert "prompt" not in WAN.normalize({"prompt": "   "})
    assert "negativePrompt" not in WAN.normalize({"negativePrompt": ""})
    assert WAN.normalize({"prompt": "a cat keeps walking"})["prompt"] == "a cat keeps walking"


def test_wan_text_lengths() -> None:
    assert WAN.normalize({"prompt": "x" * 5000})["prompt"] == "x" * 5000
    error = problem(WAN, {"prompt": "x" * 5001})
    assert (error.field, error.allowed) == ("prompt", "1 … 5000 characters")
    assert "5001 characters" in str(error)
    assert len(str(error)) < 200  # the prompt itself is not pasted into the message
    assert WAN.normalize({"negativePrompt": "n" * 500})["negativePrompt"] == "n" * 500
    error = problem(WAN, {"negativePrompt": "n" * 501})
    assert (error.field, error.allowed) == ("negativePrompt", "up to 500 characters")


def test_wan_prompt_must_be_text() -> None:
    error = problem(WAN, {"prompt": 42})
    assert error.field == "prompt"
    assert "is not text" in str(error)


def test_wan_audio_url() -> None:
    url = "https://cdn.rh.test/a.mp3"
    assert WAN.normalize({"audioUrl": url})["audioUrl"] == url
    error = problem(WAN, {"audioUrl": "/tmp/a.mp3"})
    assert error.field == "audioUrl"
    assert "http(s) URL" in str(error)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, True), (False, False), ("false", False), ("TRUE", True), ("no", False), (1, True)],
)
def test_wan_prompt_extend_bool(given: object, expected: bool) -> None:
    assert WAN.normalize({"promptExtend": given})["promptExtend"] is expected


def test_wan_prompt_extend_default_is_omitted_and_bad_values_rejected() -> None:
    assert "promptExtend" not in WAN.normalize({})
    assert problem(WAN, {"promptExtend": "maybe"}).field == "promptExtend"
    assert problem(WAN, {"promptExtend": 2}).field == "promptExtend"


def test_wan_seed_range() -> None:
    assert WAN.normalize({"seed": "42"})["seed"] == 42
    assert WAN.normalize({"seed": 0})["seed"] == 0
    assert WAN.normalize({"seed": 2147483647})["seed"] == 2147483647
    for seed in (-1, 2147483648):
        error = problem(WAN, {"seed": seed})
        assert (error.field, error.allowed) == ("seed", "0 … 2147483647")


# --- SkyReels ------------------------------------------------------------------------------


def test_single_shot_prompt_is_required() -> None:
    cases: list[dict[str, object]] = [{}, {"prompt": ""}, {"prompt": "  "}, {"prompt": None}]
    for params in cases:
        error = problem(SINGLE, params)
        assert error.field == "prompt"
        assert str(error).startswith("prompt is required for skyreels-v3-single-shot")


def test_single_shot_duration() -> None:
    assert SINGLE.normalize({"prompt": "p"}) == {"duration": 5, "prompt": "p"}
    assert SINGLE.normalize({"prompt": "p", "duration": "30"})["duration"] == 30
    error = problem(SINGLE, {"prompt": "p", "duration": 40})
    assert str(error) == "duration=40 is out of range for skyreels-v3-single-shot: allowed 5 … 30"
    assert (error.field, error.value, error.allowed) == ("duration", 40, "5 … 30")
    assert problem(SINGLE, {"prompt": "p", "duration": 4}).field == "duration"


def test_shot_switching_fields() -> None:
    assert SWITCH.normalize({"prompt": "p"}) == {"cutType": "Auto", "duration": 5, "prompt": "p"}
    assert SWITCH.normalize({"prompt": "p", "duration": 2})["duration"] == 2
    assert problem(SWITCH, {"prompt": "p", "duration": 6}).allowed == "2 … 5"
    assert SWITCH.normalize({"prompt": "x" * 2048})["prompt"] == "x" * 2048
    assert problem(SWITCH, {"prompt": "x" * 2049}).field == "prompt"
    assert problem(SWITCH, {"duration": 3}).field == "prompt"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Cut In", "Cut-In"),
        ("cut in", "Cut-In"),
        ("Cut Out", "Cut-Out"),
        ("cut-out", "Cut-Out"),
        ("Cut-In", "Cut-In"),
        ("shot/reverse shot", "Shot/Reverse Shot"),
        ("MULTI-ANGLE", "Multi-Angle"),
        ("Cut Away", "Cut Away"),
        ("auto", "Auto"),
        ("", "Auto"),
    ],
)
def test_cut_type_aliases(given: str, canonical: str) -> None:
    assert SWITCH.normalize({"prompt": "p", "cutType": given})["cutType"] == canonical


def test_cut_type_rejects_unknown_and_lists_choices() -> None:
    error = problem(SWITCH, {"prompt": "p", "cutType": "Zoom"})
    assert error.field == "cutType"
    assert error.allowed == "Auto, Cut-In, Cut-Out, Shot/Reverse Shot, Multi-Angle, Cut Away"


# --- keys, determinism, bodies -------------------------------------------------------------


def test_unknown_key_rejected_but_none_valued_extras_tolerated() -> None:
    error = problem(SINGLE, {"prompt": "p", "cutType": "Auto"})
    assert error.field == "cutType"
    assert "unknown parameter 'cutType' for skyreels-v3-single-shot" in str(error)
    assert "prompt, duration" in error.allowed
    assert SINGLE.normalize({"prompt": "p", "cutType": None}) == {"duration": 5, "prompt": "p"}
    assert problem(WAN, {"videoUrl": "https://x/y.mp4"}).field == "videoUrl"


def test_first_problem_is_reported() -> None:
    # fields are checked in catalog order: resolution before duration
    assert problem(WAN, {"duration": 99, "resolution": "8K"}).field == "resolution"


def test_normalize_is_deterministic() -> None:
    a = WAN.normalize({"seed": 1, "prompt": "p", "duration": 10, "resolution": "720p"})
    b = WAN.normalize({"resolution": "720P", "duration": "10", "prompt": "p", "seed": "1"})
    assert a == b
    assert list(a) == sorted(a)
    assert json.dumps(a) == json.dumps(b)


def test_build_body_adds_video_url_and_refuses_local_files() -> None:
    body = SWITCH.build_body("https://cdn.rh.test/in.mp4", {"prompt": "p", "cutType": "cut in"})
    assert body == {
        "cutType": "Cut-In",
        "duration": 5,
        "prompt": "p",
        "videoUrl": "https://cdn.rh.test/in.mp4",
    }
    with pytest.raises(InputValidationError) as caught:
        WAN.build_body("/home/me/clip.mp4", {})
    assert caught.value.field == "videoUrl"


# --- durations and inputs ------------------------------------------------------------------


def test_added_seconds_total_semantics() -> None:
    assert WAN.added_seconds(6.0, WAN.normalize({"duration": 10})) == pytest.approx(4.0)
    assert WAN.added_seconds(3.5, {}) == pytest.approx(1.5)  # default duration 5


def test_added_seconds_total_must_exceed_input() -> None:
    with pytest.raises(InputValidationError) as caught:
        WAN.added_seconds(6.0, WAN.normalize({"duration": 5}))
    error = caught.value
    assert str(error) == (
        "duration=5 must be longer than the input clip (6.0 s) for wan-2.7, whose duration is "
        "the total output length: allowed 7 … 15"
    )
    assert (error.field, error.allowed) == ("duration", "7 … 15")
    with pytest.raises(InputValidationError) as caught:
        WAN.added_seconds(20.0, WAN.normalize({"duration": 15}))
    assert "none" in caught.value.allowed


def test_added_seconds_added_semantics() -> None:
    assert SINGLE.added_seconds(6.0, SINGLE.normalize({"prompt": "p", "duration": 10})) == 10.0
    assert SWITCH.added_seconds(60.0, SWITCH.normalize({"prompt": "p"})) == 5.0


def test_check_input_format_and_size() -> None:
    WAN.check_input(container="mov", size_bytes=1)
    WAN.check_input(container=".MP4", size_bytes=100 * 1024 * 1024)
    WAN.check_input(container="quicktime", size_bytes=10)
    SINGLE.check_input(container="mp4", size_bytes=10)

    with pytest.raises(InputValidationError) as caught:
        SINGLE.check_input(container="mov", size_bytes=10)
    assert (caught.value.field, caught.value.allowed) == ("container", "mp4")
    assert "'mov' is not accepted by skyreels-v3-single-shot" in str(caught.value)

    with pytest.raises(InputValidationError) as caught:
        WAN.check_input(container="mp4", size_bytes=100 * 1024 * 1024 + 1)
    assert caught.value.field == "size_bytes"
    assert "100.0 MiB" in str(caught.value)

    with pytest.raises(InputValidationError, match="empty"):
        WAN.check_input(container="mp4", size_bytes=0)
