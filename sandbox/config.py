"""Settings of the sandbox server.

Everything a test may want to tune lives here, as one mutable dataclass: the control API
(`PATCH /_sandbox/config`) changes a subset of it at run time, so tests can shorten timings,
tighten the concurrency limit or expire links without restarting the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api_keys import fingerprint

DEFAULT_API_KEY = "sk-sandbox-0001"
MIB = 1024 * 1024


@dataclass
class SandboxConfig:
    """How the sandbox behaves.

    Timings (`create_seconds`, `queue_seconds`, `run_seconds` and the `slow` task fault) are
    multiplied by `time_scale`; `url_ttl_seconds` and request-level `slow` faults are not
    (they model wall-clock behaviour a client's timeouts react to).
    """

    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    # Base of every link the server hands out; None = the server's own bound address.
    public_url: str | None = None
    # Lifecycle. create_seconds=0: the task is QUEUED by the time the submit answers.
    create_seconds: float = 0.0
    queue_seconds: float = 2.0
    run_seconds: float = 5.0
    time_scale: float = 1.0
    # Per-key concurrency: non-terminal tasks allowed per key, and the errorCode beyond it
    # ("1520" v2 style, or "421" like the legacy TASK_QUEUE_MAXED).
    concurrency_limit: int = 3
    concurrency_code: str = "1520"
    # Account money in CNY, decremented by each accepted task's price; None = unlimited.
    balance: float | None = None
    remain_coins: int = 177814
    currency: str = "CNY"
    api_key_type: str = "SHARED"
    # Size limits: upload endpoint, and the model's input video (checked when fetched).
    max_upload_bytes: int = 100 * MIB
    max_input_bytes: int = 100 * MIB
    url_ttl_seconds: float = 86400.0
    # Wan's `duration`: "total" output length (upstream semantics) or "added" length.
    wan_duration_semantics: str = "total"
    fetch_timeout_seconds: float = 60.0
    # Where uploads and outputs are stored; None = a fresh temp dir removed at shutdown.
    data_dir: str | Path | None = None
    processing_workers: int = 2

    def __post_init__(self) -> None:
        self.api_keys = set(self.api_keys)
        self._check()

    def _check(self) -> None:
        if self.wan_duration_semantics not in ("total", "added"):
            raise ValueError("wan_duration_semantics must be 'total' or 'added'")
        for name in ("create_seconds", "queue_seconds", "run_seconds", "url_ttl_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if self.concurrency_limit < 0:
            raise ValueError("concurrency_limit must be >= 0")

    def scaled(self, seconds: float) -> float:
        """A lifecycle duration after `time_scale`."""
        return max(0.0, seconds * self.time_scale)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update (the control API's PATCH); all-or-nothing.

        Raises ValueError naming the field for an unknown field or a value of the wrong type.
        """
        unknown = sorted(set(changes) - set(PATCHABLE))
        if unknown:
            raise ValueError(f"not patchable: {', '.join(unknown)}")
        coerced = {name: _coerce(name, PATCHABLE[name], value) for name, value in changes.items()}
        candidate = dataclasses.replace(self, **coerced)  # runs the checks
        for name in coerced:
            setattr(self, name, getattr(candidate, name))

    def public_view(self) -> dict[str, Any]:
        """JSON-safe view for the control API (keys shown only as fingerprints)."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        view["api_keys"] = sorted(fingerprint(k) for k in self.api_keys)
        view["data_dir"] = str(self.data_dir) if self.data_dir is not None else None
        return view


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number")
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _optional(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def inner(value: Any) -> Any:
        return None if value is None else conv(value)

    return inner


def _str_code(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("a string or integer code")
    return str(value)


def _keys(value: Any) -> set[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError("a list of strings")
    return {_str(v) for v in value}


PATCHABLE: dict[str, Callable[[Any], Any]] = {
    "create_seconds": _float,
    "queue_seconds": _float,
    "run_seconds": _float,
    "time_scale": _float,
    "concurrency_limit": _int,
    "concurrency_code": _str_code,
    "url_ttl_seconds": _float,
    "balance": _optional(_float),
    "remain_coins": _int,
    "max_upload_bytes": _int,
    "max_input_bytes": _int,
    "public_url": _optional(_str),
    "wan_duration_semantics": _str,
    "fetch_timeout_seconds": _float,
    "api_keys": _keys,
}


def _coerce(name: str, conv: Callable[[Any], Any], value: Any) -> Any:
    try:
        return conv(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: must be {exc}") from None
