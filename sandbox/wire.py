"""Response bodies, shaped like RunningHub's (see /work/shared/runninghub-api.md).

Choices where the contract is silent (documented here, asserted by the tests):
- A v2 submit or query that is refused without a task (invalid key 1002, validation 1007,
  concurrency 1520/421, balance 812, unknown task 1004, injected error codes) answers HTTP 200
  with the same object as a query, with "taskId": null, "status": null, "results": null,
  "failedReason": {} and usage fields all null. No `code` field: v2 task bodies never carry one.
- Legacy-envelope endpoints (account, queue, price preview, cancel) answer
  {"code": N, "msg": "...", "data": ...}; price-preview errors also carry "message".
- Upload answers {"code": 0, "message": "success", "data": {...}} or {"code": N, "message": ...}.
- Gateway-level problems (malformed JSON 400, unknown path 404, wrong method 405, injected
  5xx/429) answer with small nginx-style HTML pages.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse

from .lifecycle import Status, Task

EMPTY_USAGE: dict[str, Any] = {
    "consumeMoney": None,
    "consumeCoins": None,
    "taskCostTime": None,
    "thirdPartyConsumeMoney": None,
}

REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def money(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01'))}"


def task_body(task: Task, link_base: str) -> dict[str, Any]:
    """A v2 query (and accepted submit) body for `task`."""
    results = None
    if task.status is Status.SUCCESS and task.result is not None:
        results = [{"url": task.result.url(link_base), "outputType": "mp4", "text": None}]
    return {
        "taskId": task.task_id,
        "status": task.status.value,
        "errorCode": task.error_code,
        "errorMessage": task.error_message,
        "failedReason": dict(task.failed_reason),
        "usage": {
            "consumeMoney": None,
            "consumeCoins": None,
            "taskCostTime": str(task.cost_seconds()),
            "thirdPartyConsumeMoney": money(task.price),
        },
        "results": results,
        "clientId": "",
        "promptTips": "",
    }


def v2_rejection(code: str | int, message: str) -> JSONResponse:
    """HTTP 200 task-shaped refusal with no task (see module docstring)."""
    return JSONResponse(
        {
            "taskId": None,
            "status": None,
            "errorCode": str(code),
            "errorMessage": message,
            "failedReason": {},
            "usage": dict(EMPTY_USAGE),
            "results": None,
            "clientId": "",
            "promptTips": "",
        }
    )


def envelope(code: int, msg: str, data: Any = None, **extra: Any) -> JSONResponse:
    """Legacy `{code, msg, data}` body (HTTP 200)."""
    return JSONResponse({"code": code, "msg": msg, "data": data, **extra})


def upload_error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message})


def html_page(
    status: int, *, http_status: int | None = None, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """An nginx-style error page; `http_status` lets a 200 carry it (the non_json fault)."""
    title = f"{status} {REASONS.get(status, 'Error')}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return HTMLResponse(body, status_code=http_status or status, headers=headers)
