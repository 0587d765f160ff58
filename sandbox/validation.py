"""Strict validation of model submit bodies against `models_table`.

Deliberately stricter than a forgiving server: a JSON integer where RunningHub wants the
string "5", an empty prompt, a `null` for an optional field are all rejected with errorCode
1007, so a client that would be rejected by (or silently misread by) the real service fails here
too. Unknown fields are ignored, as RunningHub does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .api_keys import KEY_FIELDS
from .models_table import MAX_URL_LEN, FieldSpec, Kind, ModelSpec

_INT_STRING = re.compile(r"(0|[1-9][0-9]*)")


class FieldError(ValueError):
    """One invalid field; `str()` is the wire message "<field>: <what is wrong>"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def validate_submit(spec: ModelSpec, body: Any) -> dict[str, Any]:
    """Validated parameters (defaults filled in) or FieldError for the first bad field."""
    if not isinstance(body, Mapping):
        raise FieldError("body", "must be a JSON object")
    params: dict[str, Any] = {}
    for f in spec.fields:
        if f.name not in body:
            if f.required:
                raise FieldError(f.name, "is required")
            if f.default is not None:
                params[f.name] = f.default
            continue
        params[f.name] = _check(f, body[f.name])
    # Keep unknown fields out of params; keys are never kept.
    for name in KEY_FIELDS:
        params.pop(name, None)
    return params


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check(f: FieldSpec, value: Any) -> Any:
    checker = _CHECKERS[f.kind]
    return checker(f, value)


def _check_text(f: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f.name, f"must be a string, got {_type_name(value)}")
    if f.min_len is not None and len(value) < f.min_len:
        if not value:
            raise FieldError(f.name, "must not be empty (omit the field instead)")
        raise FieldError(f.name, f"must be at least {f.min_len} characters")
    if f.max_len is not None and len(value) > f.max_len:
        raise FieldError(f.name, f"must be at most {f.max_len} characters, got {len(value)}")
    return value


def _check_url(f: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f.name, f"must be a URL string, got {_type_name(value)}")
    if not value or len(value) > MAX_URL_LEN:
        raise FieldError(f.name, "must be a non-empty http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError(f.name, "must be an http(s) URL (upload local files first)")
    return value


def _check_range(f: FieldSpec, number: int) -> None:
    low, high = f.min_value, f.max_value
    if (low is not None and number < low) or (high is not None and number > high):
        raise FieldError(f.name, f"must be between {low} and {high}, got {number}")


def _check_int_string(f: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        example = value if isinstance(value, int) and not isinstance(value, bool) else 5
        raise FieldError(f.name, f'must be a string such as "{example}", got {_type_name(value)}')
    if not _INT_STRING.fullmatch(value):
        raise FieldError(f.name, f"must be a whole number written as a string, got {value!r}")
    _check_range(f, int(value))
    return value


def _check_int(f: FieldSpec, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f.name, f"must be an integer, got {_type_name(value)}")
    _check_range(f, value)
    return value


def _check_bool(f: FieldSpec, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f.name, f"must be a boolean, got {_type_name(value)}")
    return value


def _check_choice(f: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f.name, f"must be a string, got {_type_name(value)}")
    if value not in f.choices:
        allowed = ", ".join(f.choices)
        raise FieldError(f.name, f"must be one of {allowed}; got {value!r}")
    return value


_CHECKERS = {
    Kind.TEXT: _check_text,
    Kind.URL: _check_url,
    Kind.INT_STRING: _check_int_string,
    Kind.INT: _check_int,
    Kind.BOOL: _check_bool,
    Kind.CHOICE: _check_choice,
}
