"""The video-extend models as data: paths, parameters, limits and their validation.

RunningHub renames endpoints and enum spellings without notice, so everything a model needs
lives here, in one table, instead of being scattered through the client. Parameters use the
wire names (`negativePrompt`, `cutType`, ...) so a body can be built without a mapping layer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from .exceptions import InputValidationError

__all__ = ["CATALOG", "DurationSemantics", "FieldSpec", "ModelSpec", "get_model"]

DurationSemantics = Literal["total", "added"]
"""`total`: `duration` is the whole output length (Wan); `added`: seconds added (SkyReels)."""

FieldKind = Literal["str", "int", "bool", "url", "int_as_str"]

_INT_TEXT = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class FieldSpec:
    """One user-settable request field, named as on the wire."""

    name: str
    kind: FieldKind
    required: bool = False
    default: object | None = None
    choices: tuple[str, ...] | None = None
    # accepted spelling -> canonical spelling; matched case-insensitively
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    help: str = ""

    def __post_init__(self) -> None:
        # a read-only view, so a shared catalog cannot be changed by one caller
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))

    def choice_for(self, value: str) -> str | None:
        """The choice VALUE spells (exactly, by an alias or in another case), if any."""
        if self.choices is None:
            return None
        wanted = value.strip()
        if wanted in self.choices:
            return wanted
        folded = wanted.casefold()
        for alias, canonical in self.aliases.items():
            if alias.casefold() == folded:
                return canonical
        return next((c for c in self.choices if c.casefold() == folded), None)

    @property
    def allowed(self) -> str:
        """What this field accepts, in words (used in error messages and CLI help)."""
        if self.choices is not None:
            return ", ".join(self.choices)
        if self.kind in ("int", "int_as_str"):
            return _range_text(self.minimum, self.maximum, "")
        if self.kind == "bool":
            return "true or false"
        if self.kind == "url":
            return "an http(s) URL"
        if self.min_length is None and self.max_length is None:
            return "any text"
        return _range_text(self.min_length, self.max_length, " characters")


def _range_text(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low} … {high}{unit}"
    if high is not None:
        return f"up to {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return "any integer"


def _show(value: object) -> str:
    """A short repr for messages: prompts can be thousands of characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ModelSpec:
    """One video-extend model: where to POST, what it accepts, how its duration counts."""

    id: str
    title: str
    path: str
    alternate_paths: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    input_formats: tuple[str, ...]
    max_input_bytes: int
    duration_semantics: DurationSemantics
    typical_seconds: int

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise InputValidationError(
            f"unknown parameter {name!r} for {self.id}: allowed {self._names()}",
            field=name,
            value=None,
            allowed=self._names(),
        )

    def normalize(self, params: Mapping[str, object]) -> dict[str, object]:
        """Validate user parameters and return the canonical wire values, keys sorted.

        `None` means "not given". Defaults are applied, aliases canonicalized, numbers coerced
        to their wire type, empty optional text dropped. The first problem raises
        InputValidationError. The same input always gives the same dict, so it can be hashed.
        """
        known = {spec.name for spec in self.fields}
        for key in sorted(params):
            # None-valued extras are tolerated: callers often pass every option they know of
            if key not in known and params[key] is not None:
                raise InputValidationError(
                    f"unknown parameter {key!r} for {self.id}: allowed {self._names()}",
                    field=key,
                    value=params[key],
                    allowed=self._names(),
                )
        out: dict[str, object] = {}
        for spec in self.fields:
            value = self._normalize_field(spec, params.get(spec.name))
            if value is not None:
                out[spec.name] = value
        return dict(sorted(out.items()))

    def build_body(self, video_url: str, params: Mapping[str, object]) -> dict[str, object]:
        """The JSON body to submit: normalized parameters plus the input video URL."""
        url = _as_url(self, "videoUrl", video_url)
        return dict(sorted({**self.normalize(params), "videoUrl": url}.items()))

    def added_seconds(self, input_duration_s: float, normalized: Mapping[str, object]) -> float:
        """How many seconds the model adds to an input of `input_duration_s` seconds."""
        duration = self._duration(normalized)
        if self.duration_semantics == "added":
            return float(duration)
        added = duration - input_duration_s
        if added <= 0:
            spec = self.field("duration")
            low = max(math.floor(input_duration_s) + 1, spec.minimum or 0)
            allowed = (
                _range_text(low, spec.maximum, "")
                if spec.maximum is None or low <= spec.maximum
                else f"none: the input is longer than the {spec.maximum} s maximum output"
            )
            raise InputValidationError(
                f"duration={duration} must be longer than the input clip "
                f"({input_duration_s:.1f} s) for {self.id}, whose duration is the total "
                f"output length: allowed {allowed}",
                field="duration",
                value=duration,
                allowed=allowed,
            )
        return added

    def check_input(self, *, container: str, size_bytes: int) -> None:
        """Reject an input file the model cannot take: wrong format, empty or too large.

        `container` is the file format as an extension ("mp4", ".MOV") or "quicktime".
        """
        fmt = container.strip().lower().lstrip(".")
        fmt = {"quicktime": "mov"}.get(fmt, fmt)
        formats = ", ".join(self.input_formats)
        if fmt not in self.input_formats:
            raise InputValidationError(
                f"input format {container!r} is not accepted by {self.id}: allowed {formats}",
                field="container",
                value=container,
                allowed=formats,
            )
        limit = f"1 byte … {_mib(self.max_input_bytes)}"
        if size_bytes <= 0:
            raise InputValidationError(
                f"the input file is empty; {self.id} needs a video of {limit}",
                field="size_bytes",
                value=size_bytes,
                allowed=limit,
            )
        if size_bytes > self.max_input_bytes:
            raise InputValidationError(
                f"the input file is {_mib(size_bytes)}, larger than the "
                f"{_mib(self.max_input_bytes)} {self.id} accepts",
                field="size_bytes",
                value=size_bytes,
                allowed=limit,
            )

    # --- helpers ---------------------------------------------------------------------------

    def _names(self) -> str:
        return ", ".join(spec.name for spec in self.fields)

    def _duration(self, normalized: Mapping[str, object]) -> int:
        value = normalized.get("duration")
        if value is None:
            value = self.field("duration").default
        return _as_int(self, self.field("duration"), value)

    def _normalize_field(self, spec: FieldSpec, value: object) -> object | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            # RunningHub wants optional text omitted rather than sent as "" (Wan prompt)
            if spec.default is not None:
                value = spec.default
            elif spec.required:
                raise InputValidationError(
                    f"{spec.name} is required for {self.id}: allowed {spec.allowed}",
                    field=spec.name,
                    value=value,
                    allowed=spec.allowed,
                )
            else:
                return None
        if spec.kind == "bool":
            return _as_bool(self, spec, value)
        if spec.kind == "url":
            return _as_url(self, spec.name, value)
        if spec.kind in ("int", "int_as_str"):
            number = _as_int(self, spec, value)
            _check_range(self, spec, number)
            return str(number) if spec.kind == "int_as_str" else number
        return _as_text(self, spec, value)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _invalid(
    model: ModelSpec, spec: FieldSpec, value: object, problem: str
) -> InputValidationError:
    return InputValidationError(
        f"{spec.name}={_show(value)} {problem} for {model.id}: allowed {spec.allowed}",
        field=spec.name,
        value=value,
        allowed=spec.allowed,
    )


def _as_int(model: ModelSpec, spec: FieldSpec, value: object) -> int:
    # bool is an int subclass, but `duration=True` is a mistake, not 1
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise _invalid(model, spec, value, "is not a whole number")


def _check_range(model: ModelSpec, spec: FieldSpec, number: int) -> None:
    too_low = spec.minimum is not None and number < spec.minimum
    too_high = spec.maximum is not None and number > spec.maximum
    if too_low or too_high:
        raise _invalid(model, spec, number, "is out of range")


def _as_bool(model: ModelSpec, spec: FieldSpec, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _invalid(model, spec, value, "is not true or false")


def _as_url(model: ModelSpec, name: str, value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputValidationError(
            f"{name}={_show(value)} is not an http(s) URL for {model.id}: allowed an http(s) "
            "URL (upload local files first)",
            field=name,
            value=value,
            allowed="an http(s) URL",
        )
    return text


def _as_text(model: ModelSpec, spec: FieldSpec, value: object) -> str:
    if not isinstance(value, str):
        raise _invalid(model, spec, value, "is not text")
    if spec.choices is not None:
        return _canonical_choice(model, spec, value)
    length = len(value)
    if (spec.min_length is not None and length < spec.min_length) or (
        spec.max_length is not None and length > spec.max_length
    ):
        raise InputValidationError(
            f"{spec.name} is {length} characters long, out of range for {model.id}: "
            f"allowed {spec.allowed}",
            field=spec.name,
            value=value,
            allowed=spec.allowed,
        )
    return value


def _canonical_choice(model: ModelSpec, spec: FieldSpec, value: str) -> str:
    choice = spec.choice_for(value)
    if choice is None:
        raise _invalid(model, spec, value, "is not a valid choice")
    return choice


# --- the models ----------------------------------------------------------------------------

_MAX_INPUT = 100 * 1024 * 1024

_WAN = ModelSpec(
    id="wan-2.7",
    title="Wan 2.7 video extend",
    # Every client found posts to the alibaba/ path; the documentation tree names the other.
    path="/openapi/v2/alibaba/wan-2.7/video-extend",
    alternate_paths=("/openapi/v2/wan-2.7/video-extend",),
    fields=(
        FieldSpec(
            "resolution",
            "str",
            required=True,
            default="1080P",
            choices=("720P", "1080P"),
            help="Output resolution.",
        ),
        FieldSpec(
            "duration",
            "int_as_str",
            required=True,
            default=5,
            minimum=2,
            maximum=15,
            help="Total output length in seconds (input + continuation), sent as a string.",
        ),
        FieldSpec("prompt", "str", min_length=1, max_length=5000, help="What happens next."),
        FieldSpec("negativePrompt", "str", max_length=500, help="What to avoid."),
        FieldSpec("audioUrl", "url", help="MP3 or WAV (≤ 15 MB) to drive the continuation."),
        FieldSpec("promptExtend", "bool", help="Let the model rewrite the prompt (server: true)."),
        FieldSpec("seed", "int", minimum=0, maximum=2147483647, help="Random seed."),
    ),
    input_formats=("mp4", "mov"),
    max_input_bytes=_MAX_INPUT,
    duration_semantics="total",
    typical_seconds=180,
)

_SKYREELS_SINGLE = ModelSpec(
    id="skyreels-v3-single-shot",
    title="SkyReels V3 single-shot extension",
    path="/openapi/v2/skyreels-v3/single-shot-video-extension",
    alternate_paths=(),
    fields=(
        FieldSpec("prompt", "str", required=True, help="What happens next (≤ 512 tokens)."),
        FieldSpec(
            "duration",
            "int",
            default=5,
            minimum=5,
            maximum=30,
            help="Seconds added to the input.",
        ),
    ),
    input_formats=("mp4",),
    max_input_bytes=_MAX_INPUT,
    duration_semantics="added",
    typical_seconds=240,
)

_SKYREELS_SWITCH = ModelSpec(
    id="skyreels-v3-shot-switching",
    title="SkyReels V3 shot-switching extension",
    path="/openapi/v2/skyreels-v3/shot-switching-video-extension",
    alternate_paths=(),
    fields=(
        FieldSpec(
            "prompt", "str", required=True, max_length=2048, help="What the next shot shows."
        ),
        FieldSpec(
            "duration",
            "int",
            default=5,
            minimum=2,
            maximum=5,
            help="Seconds added to the input.",
        ),
        FieldSpec(
            "cutType",
            "str",
            default="Auto",
            choices=("Auto", "Cut-In", "Cut-Out", "Shot/Reverse Shot", "Multi-Angle", "Cut Away"),
            aliases={"Cut In": "Cut-In", "Cut Out": "Cut-Out"},
            help="How the shot changes.",
        ),
    ),
    input_formats=("mp4",),
    max_input_bytes=_MAX_INPUT,
    duration_semantics="added",
    typical_seconds=150,
)

CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {spec.id: spec for spec in (_WAN, _SKYREELS_SINGLE, _SKYREELS_SWITCH)}
)


def get_model(model_id: str) -> ModelSpec:
    """The model with this id; InputValidationError listing the known ids otherwise."""
    spec = CATALOG.get(model_id.strip()) if isinstance(model_id, str) else None
    if spec is None:
        known = ", ".join(CATALOG)
        raise InputValidationError(
            f"unknown model {model_id!r}: allowed {known}",
            field="model",
            value=model_id,
            allowed=known,
        )
    return spec
