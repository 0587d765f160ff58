"""The one typed request: drawn from the catalog, lenient in spelling, strict per model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rh_extend.request import ExtendRequest, catalog_literals
from runninghub import InputValidationError

WAN, SINGLE, SWITCH = "wan-2.7", "skyreels-v3-single-shot", "skyreels-v3-shot-switching"


@pytest.mark.parametrize("name", ["model", "resolution", "cut_type"])
def test_each_literal_equals_the_catalogs_values(name: str) -> None:
    literal, catalog = catalog_literals()[name]
    assert literal == catalog


def test_the_json_schema_offers_choices_and_ranges() -> None:
    schema = ExtendRequest.model_json_schema()["properties"]
    assert schema["model"]["enum"] == [WAN, SINGLE, SWITCH]
    assert schema["resolution"]["enum"] == ["720P", "1080P", None]
    assert "Shot/Reverse Shot" in schema["cut_type"]["enum"]
    duration = next(s for s in schema["duration"]["anyOf"] if s.get("type") == "integer")
    assert (duration["minimum"], duration["maximum"]) == (2, 30)
    seed = next(s for s in schema["seed"]["anyOf"] if s.get("type") == "integer")
    assert (seed["minimum"], seed["maximum"]) == (0, 2**31 - 1)


def test_spellings_become_the_catalogs_and_params_are_the_wire_values() -> None:
    request = ExtendRequest(source="a.mp4", model=SWITCH, prompt="x", cut_type="cut in")
    assert request.cut_type == "Cut-In"
    assert request.params() == {"cutType": "Cut-In", "duration": 5, "prompt": "x"}
    wan = ExtendRequest(source="a.mp4", model=f" {WAN} ", resolution="720p", duration=8, seed=3)
    assert (wan.model, wan.resolution) == (WAN, "720P")
    assert wan.wire_params() == {"duration": 8, "resolution": "720P", "seed": 3}
    assert wan.params() == {"duration": "8", "resolution": "720P", "seed": 3}


def test_a_request_survives_its_json_form() -> None:
    request = ExtendRequest(source="s3://b/k.mp4", model=WAN, prompt="p", take="t2", max_cost=1.5)
    assert ExtendRequest.model_validate(request.model_dump(mode="json")) == request


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": WAN, "duration": 16}, "duration=16 is out of range for wan-2.7: allowed 2 … 15"),
        ({"model": WAN, "duration": 99}, "duration=99 is out of range for wan-2.7: allowed 2 … 15"),
        ({"model": SINGLE}, "prompt is required for skyreels-v3-single-shot"),
        ({"model": SINGLE, "prompt": "x", "seed": 7}, "unknown parameter 'seed'"),
        ({"model": "no-such"}, "unknown model 'no-such': allowed wan-2.7, skyreels-v3-single"),
        ({"model": WAN, "resolution": "4K"}, "resolution='4K' is not a valid choice for wan-2.7"),
        ({"model": WAN, "max_cost": -1}, "max_cost=-1 is not allowed: Input should be greater"),
        ({"model": WAN, "sed": 1}, "sed=1 is not allowed: Extra inputs are not permitted"),
    ],
)
def test_checked_names_the_field_the_value_and_what_is_allowed(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InputValidationError) as caught:
        ExtendRequest.checked(source="a.mp4", **fields)
    assert message in str(caught.value)


def test_the_flow_form_refuses_what_the_model_does_not_allow() -> None:
    """Prefect validates a run's parameters with pydantic: the catalog's message is in it."""
    with pytest.raises(ValidationError, match="duration=4 is out of range for skyreels-v3-single"):
        ExtendRequest(source="a.mp4", model=SINGLE, prompt="x", duration=4)
