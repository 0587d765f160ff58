"""The three video-extend models as data: paths, request fields, limits, prices.

Written independently of the `runninghub` client package on purpose (a shared table would let
a client bug pass its own tests). Source: /work/shared/runninghub-api.md §2.

Sandbox pricing (CNY, what `price-preview`, `usage.thirdPartyConsumeMoney` and the ledger use):
  Wan 2.7 video-extend: 0.85/s at 1080P, 0.51/s at 720P, times `duration`
  SkyReels V3 single-shot: 0.30/s times `duration`
  SkyReels V3 shot-switching: 0.40/s times `duration`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

V2_PREFIX = "/openapi/v2/"


class Kind(StrEnum):
    """Wire type a field must have (strict: RunningHub's own types, no coercion)."""

    URL = "url"  # http(s) URL string
    TEXT = "text"  # string with length limits
    INT_STRING = "int_string"  # a decimal integer written as a JSON string, e.g. "5"
    INT = "int"  # a JSON integer (not a bool, not a float, not a string)
    BOOL = "bool"
    CHOICE = "choice"  # one string out of `choices`


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    min_len: int | None = None
    max_len: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    key: str
    title: str
    paths: tuple[str, ...]  # first = canonical; all are served
    fields: tuple[FieldSpec, ...]
    containers: frozenset[str]  # accepted input containers ("mp4", "mov")
    duration_semantics: str  # "total" (output length) or "added"; "config" = from settings
    rates: dict[str, Decimal] = field(default_factory=dict)  # per-second price by rate_field
    rate_field: str | None = None  # field whose value picks the rate; None = rates["*"]

    @property
    def path(self) -> str:
        return self.paths[0]

    def price(self, params: dict[str, Any]) -> Decimal:
        """Price of a validated request: per-second rate times `duration`."""
        rate_key = str(params[self.rate_field]) if self.rate_field else "*"
        seconds = Decimal(int(params["duration"]))
        return (self.rates[rate_key] * seconds).quantize(Decimal("0.01"))


MAX_URL_LEN = 4096

WAN_27 = ModelSpec(
    key="wan-2.7-video-extend",
    title="Wan 2.7 video extend",
    paths=("/openapi/v2/alibaba/wan-2.7/video-extend", "/openapi/v2/wan-2.7/video-extend"),
    fields=(
        FieldSpec("videoUrl", Kind.URL, required=True),
        FieldSpec("resolution", Kind.CHOICE, required=True, choices=("720P", "1080P")),
        FieldSpec("duration", Kind.INT_STRING, required=True, min_value=2, max_value=15),
        FieldSpec("prompt", Kind.TEXT, min_len=1, max_len=5000),
        FieldSpec("negativePrompt", Kind.TEXT, min_len=0, max_len=500),
        FieldSpec("audioUrl", Kind.URL),
        FieldSpec("promptExtend", Kind.BOOL, default=True),
        FieldSpec("seed", Kind.INT, min_value=0, max_value=2147483647),
    ),
    containers=frozenset({"mp4", "mov"}),
    duration_semantics="config",
    rates={"1080P": Decimal("0.85"), "720P": Decimal("0.51")},
    rate_field="resolution",
)

SKYREELS_SINGLE = ModelSpec(
    key="skyreels-v3-single-shot",
    title="SkyReels V3 single-shot video extension",
    paths=("/openapi/v2/skyreels-v3/single-shot-video-extension",),
    fields=(
        FieldSpec("prompt", Kind.TEXT, required=True, min_len=1),
        FieldSpec("videoUrl", Kind.URL, required=True),
        FieldSpec("duration", Kind.INT, default=5, min_value=5, max_value=30),
    ),
    containers=frozenset({"mp4"}),
    duration_semantics="added",
    rates={"*": Decimal("0.30")},
)

CUT_TYPES = (
    "Auto",
    "Cut-In",
    "Cut-Out",
    "Shot/Reverse Shot",
    "Multi-Angle",
    "Cut Away",
    "Cut In",  # older spellings, still accepted
    "Cut Out",
)

SKYREELS_SWITCH = ModelSpec(
    key="skyreels-v3-shot-switching",
    title="SkyReels V3 shot-switching video extension",
    paths=("/openapi/v2/skyreels-v3/shot-switching-video-extension",),
    fields=(
        FieldSpec("prompt", Kind.TEXT, required=True, min_len=1, max_len=2048),
        FieldSpec("videoUrl", Kind.URL, required=True),
        FieldSpec("duration", Kind.INT, default=5, min_value=2, max_value=5),
        FieldSpec("cutType", Kind.CHOICE, default="Auto", choices=CUT_TYPES),
    ),
    containers=frozenset({"mp4"}),
    duration_semantics="added",
    rates={"*": Decimal("0.40")},
)

MODELS: tuple[ModelSpec, ...] = (WAN_27, SKYREELS_SINGLE, SKYREELS_SWITCH)
MODELS_BY_PATH: dict[str, ModelSpec] = {p: m for m in MODELS for p in m.paths}
MODELS_BY_KEY: dict[str, ModelSpec] = {m.key: m for m in MODELS}


def model_for_path(path: str) -> ModelSpec | None:
    """The model served at `path` (trailing slash tolerated)."""
    return MODELS_BY_PATH.get(path.rstrip("/") or path)


def model_for_price_preview(rest: str) -> ModelSpec | None:
    """`/openapi/v2/price-preview/<rest>` prices the model at `/openapi/v2/<rest>`."""
    return model_for_path(V2_PREFIX + rest.strip("/"))
