"""One typed extend request: what the flow, a batch item, an event, the receiver and the CLI pass.

Its field types come from the model catalog (`runninghub.CATALOG`): the model id, resolution and
cut type are Literals, numbers are bounded, so Prefect's run form offers dropdowns and ranges
and rejects a bad value before the run starts. The bounds here are the widest any model allows;
each model's own ranges, required fields and spellings are checked by the catalog when the
request is built (`runninghub.ModelSpec.normalize`), with a message naming the field, the value
and what that model allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runninghub import CATALOG, InputValidationError, get_model

ModelId = Literal["wan-2.7", "skyreels-v3-single-shot", "skyreels-v3-shot-switching"]
Resolution = Literal["720P", "1080P"]
CutType = Literal["Auto", "Cut-In", "Cut-Out", "Shot/Reverse Shot", "Multi-Angle", "Cut Away"]

SEED_MAX = 2**31 - 1
# Request fields → the catalog's wire names (the rest are named the same).
WIRE_NAMES = {"negative_prompt": "negativePrompt", "cut_type": "cutType"}
MODEL_PARAMS = ("prompt", "duration", "resolution", "cut_type", "negative_prompt", "seed")


def _choices(model: str, wire_name: str) -> tuple[str, ...]:
    choices = CATALOG[model].field(wire_name).choices
    assert choices is not None
    return choices


class ExtendRequest(BaseModel):
    """What to extend, with which model and parameters, and under which take and budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        min_length=1,
        description="The video: a local path on the worker, an https:// URL or s3://bucket/key.",
    )
    model: ModelId = Field(description="The RunningHub video-extend model.")
    prompt: str | None = Field(
        None,
        max_length=5000,
        description="What should happen next. Required by the SkyReels models.",
    )
    duration: int | None = Field(
        None,
        ge=2,
        le=30,
        description="Seconds. Wan 2.7: total output length 2-15; SkyReels single-shot: seconds "
        "added 5-30; shot-switching: seconds added 2-5. Empty: the model's default (5).",
    )
    # Literal[..., None], not `... | None`: one choice list with "none" in it, which Prefect's
    # run form shows as a dropdown rather than a type switch.
    resolution: Literal[Resolution, None] = Field(None, description="Wan 2.7 only.")
    cut_type: Literal[CutType, None] = Field(None, description="SkyReels shot-switching only.")
    negative_prompt: str | None = Field(None, max_length=500, description="Wan 2.7 only.")
    seed: int | None = Field(
        None, ge=0, le=SEED_MAX, description="Wan 2.7 only. A new seed is a new (paid) take."
    )
    take: str | None = Field(
        None,
        description="Label of a deliberate new attempt at the same request: a new take is "
        "submitted (and paid) again; the same label resumes it.",
    )
    max_cost: float | None = Field(
        None,
        ge=0,
        description="Refuse to submit when RunningHub's price preview is higher (account "
        "currency). Empty: RH_EXTEND_MAX_COST, else no limit.",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _known_model(cls, value: Any) -> Any:
        return get_model(value).id if isinstance(value, str) else value

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution_spelling(cls, value: Any) -> Any:
        return _spelled_as_in_catalog("wan-2.7", "resolution", value)

    @field_validator("cut_type", mode="before")
    @classmethod
    def _cut_type_spelling(cls, value: Any) -> Any:
        return _spelled_as_in_catalog("skyreels-v3-shot-switching", "cutType", value)

    @model_validator(mode="after")
    def _allowed_by_the_model(self) -> ExtendRequest:
        self.params()  # the model's own ranges, required fields and which fields it takes
        return self

    def wire_params(self) -> dict[str, object]:
        """The given model parameters under their wire names; unset ones left out."""
        return _wire_params({name: getattr(self, name) for name in MODEL_PARAMS})

    def params(self) -> dict[str, object]:
        """The normalized wire parameters the model is submitted with (defaults applied)."""
        return get_model(self.model).normalize(self.wire_params())

    @classmethod
    def checked(cls, **fields: Any) -> ExtendRequest:
        """Build a request, raising InputValidationError (the field, the value, what is allowed)
        instead of pydantic's ValidationError: the CLI's exit code 2. The catalog looks first,
        so its messages name what this model allows, not only the widest bounds."""
        get_model(fields.get("model", "")).normalize(_wire_params(fields))
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise _input_error(exc, fields) from None


def _wire_params(fields: dict[str, Any]) -> dict[str, object]:
    given = {name: fields.get(name) for name in MODEL_PARAMS}
    return {WIRE_NAMES.get(k, k): v for k, v in given.items() if v is not None}


def _spelled_as_in_catalog(model: str, wire_name: str, value: Any) -> Any:
    """`720p` → `720P`, `Cut In` → `Cut-In`: the catalog's spellings, case-insensitively."""
    if not isinstance(value, str):
        return value
    return CATALOG[model].field(wire_name).choice_for(value) or value


def _input_error(exc: ValidationError, fields: dict[str, Any]) -> InputValidationError:
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, InputValidationError):
        return cause
    name = ".".join(str(part) for part in first["loc"]) or "request"
    value = fields.get(name, first.get("input"))
    allowed = _allowed_text(first)
    return InputValidationError(
        f"{name}={value!r} is not allowed: {first['msg']}", field=name, value=value, allowed=allowed
    )


def _allowed_text(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    bounds = [f"{k} {v}" for k, v in ctx.items() if k in ("ge", "le", "gt", "lt", "max_length")]
    return ", ".join(bounds) or str(error.get("msg", ""))


def catalog_literals() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each Literal here beside the catalog's values it must equal (checked by a unit test)."""
    return {
        "model": (get_args(ModelId), tuple(CATALOG)),
        "resolution": (get_args(Resolution), _choices("wan-2.7", "resolution")),
        "cut_type": (get_args(CutType), _choices("skyreels-v3-shot-switching", "cutType")),
    }


def flat_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """An `extend_video` run's parameters as one level (`source`, `model`, ..., `resubmit`), for
    reports and tags; `request` may be a dict (from the API) or an ExtendRequest (in the run)."""
    flat = dict(parameters or {})
    request = flat.pop("request", None)
    if isinstance(request, BaseModel):
        request = request.model_dump(mode="json")
    return {**(request if isinstance(request, dict) else {}), **flat}
