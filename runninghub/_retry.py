"""Retry machinery: the policy, back-off with jitter, the server's Retry-After, and the tenacity
loops that repeat a call. Which errors a loop repeats is the caller's choice (see _errors)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception

from .exceptions import ConcurrencyLimitError, TransientError

logger = logging.getLogger("runninghub")

MAX_RETRY_AFTER = 600.0  # a broken Retry-After header must not park us for hours

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client retries what is safe to retry. Delays are in seconds.

    `attempts` counts every try, the first included. Delays double from `initial` up to
    `maximum`, plus up to `jitter`; a server's Retry-After replaces the computed delay.
    """

    attempts: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0
    concurrency_wait: float = 600.0  # how long a submit may wait for a free slot on 1520/421


def backoff(policy: RetryPolicy, attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): the server's hint, else exponential."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    delay = min(policy.initial * 2.0 ** max(attempt - 1, 0), policy.maximum)
    return delay + random.uniform(0, policy.jitter) if policy.jitter > 0 else delay


def retry_after(response: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (delta or HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TransientError)


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def hinted_delay(policy: RetryPolicy, state: RetryCallState, attempt: int) -> float:
    """Delay after the failed try in `state`: its error's Retry-After, else the back-off."""
    error = _failure(state)
    hint = error.retry_after if isinstance(error, TransientError) else None
    return backoff(policy, attempt, hint)


def retrying(
    what: str,
    *,
    retry: Callable[[BaseException], bool],
    stop: Callable[[RetryCallState], bool],
    wait: Callable[[RetryCallState], float],
    sleep: Callable[[float], None],
) -> Retrying:
    """A tenacity loop that repeats the errors `retry` accepts and logs each retry."""
    return Retrying(
        retry=retry_if_exception(retry),
        stop=stop,
        wait=wait,
        sleep=sleep,
        before_sleep=lambda state: _log_retry(what, state),
        reraise=True,
    )


def run(attempts: Retrying, call: Callable[[int], T]) -> T:
    """`call(attempt number)` under `attempts`: its result, or the last error re-raised."""
    for attempt in attempts:
        with attempt:
            return call(attempt.retry_state.attempt_number)
    raise AssertionError("unreachable")


def with_retries(
    policy: RetryPolicy, sleep: Callable[[float], None], what: str, call: Callable[[int], T]
) -> T:
    """Run an idempotent call, repeating it on TransientError as `policy` allows."""
    attempts = retrying(
        what,
        retry=is_transient,
        stop=lambda state: state.attempt_number >= max(1, policy.attempts),
        wait=lambda state: hinted_delay(policy, state, state.attempt_number),
        sleep=sleep,
    )
    return run(attempts, call)


class SubmitBudget:
    """Retry accounting for a submit: few tries for 429/connect, a time budget for 1520/421."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self._policy = policy
        self._sleep = sleep
        self._started = time.monotonic()
        self._slept = 0.0
        self._failures = 0

    def _waited(self) -> float:
        # what we slept counts too, so an injected fake sleep still ends the wait
        return max(time.monotonic() - self._started, self._slept)

    def stop(self, state: RetryCallState) -> bool:
        if isinstance(_failure(state), ConcurrencyLimitError):
            return self._waited() >= self._policy.concurrency_wait
        self._failures += 1
        return self._failures >= max(1, self._policy.attempts)

    def wait(self, state: RetryCallState) -> float:
        delay = hinted_delay(self._policy, state, state.attempt_number)
        if isinstance(_failure(state), ConcurrencyLimitError):
            delay = min(delay, max(self._policy.concurrency_wait - self._waited(), 0.0))
        return delay

    def sleep(self, seconds: float) -> None:
        self._slept += seconds
        self._sleep(seconds)


def _log_retry(what: str, state: RetryCallState) -> None:
    delay = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "%s: attempt %d failed (%s); retrying in %.1f s",
        what,
        state.attempt_number,
        _failure(state),
        delay,
    )
