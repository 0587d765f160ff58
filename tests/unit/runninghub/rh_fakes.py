"""Shared fakes for the runninghub tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from runninghub import RetryPolicy

BASE = "https://rh.test"
KEY = "sk-SECRET-do-not-leak-7f3a9c"
TASK_ID = "2013508786110730241"
WAN_PATH = "/openapi/v2/alibaba/wan-2.7/video-extend"
VIDEO_URL = "https://cdn.rh.test/openapi/input.mp4"

# instant backoff; a small concurrency budget so "always full" ends quickly
FAST = RetryPolicy(attempts=5, initial=0.0, maximum=0.0, jitter=0.0, concurrency_wait=5.0)


def task_body(status: str = "QUEUED", **extra: object) -> dict[str, object]:
    """A v2 submit/query answer as RunningHub sends it."""
    body: dict[str, object] = {
        "taskId": TASK_ID,
        "status": status,
        "errorCode": "",
        "errorMessage": "",
        "failedReason": {},
        "usage": None,
        "results": None,
        "clientId": "",
        "promptTips": "",
    }
    body.update(extra)
    return body


def success_body(url: str = "https://cdn.rh.test/output/x.mp4") -> dict[str, object]:
    return task_body(
        "SUCCESS",
        results=[{"url": url, "outputType": "mp4", "text": None}],
        usage={
            "consumeMoney": None,
            "consumeCoins": None,
            "taskCostTime": "0",
            "thirdPartyConsumeMoney": "4.25",
        },
    )


class Sleeps(list[float]):
    """A fake sleep that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
