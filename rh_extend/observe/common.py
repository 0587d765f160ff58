"""Shared by the observability modules: never break a run, never leak the key."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("rh_extend.observe")
MAX_TEXT = 600


def run_logger() -> Any:
    """The Prefect run logger inside a run (so lines reach the UI), else a plain logger."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def best_effort(fn: Callable[P, R]) -> Callable[P, R | None]:
    """Reporting must never fail a run that did its job: a failure here is logged, not raised."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            run_logger().warning(
                "observability: %s failed (%s: %s); the run goes on",
                fn.__name__,
                type(exc).__name__,
                scrub(str(exc)),
            )
            return None

    return wrapper


def scrub(text: str, limit: int = MAX_TEXT) -> str:
    """TEXT without the RunningHub API key (should a message ever echo it), shortened."""
    from rh_extend.settings import load_settings

    try:
        key = load_settings().api_key()
    except Exception:
        key = ""
    if key and len(key) >= 8:
        text = text.replace(key, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(request_key: str | None) -> str:
    """How log lines name a request: its first 12 hex digits."""
    return (request_key or "?")[:12]


def error_fields(exc: BaseException | None) -> dict[str, str]:
    """type, code and message of an exception, as the CLI reports them (key scrubbed)."""
    if exc is None:
        return {"type": "", "code": "UNKNOWN", "message": ""}
    code = getattr(exc, "code", None) or type(exc).__name__
    return {"type": type(exc).__name__, "code": str(code), "message": scrub(str(exc))}
