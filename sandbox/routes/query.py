"""How a key's tasks are doing: POST /openapi/v2/query (one task) and GET
/openapi/v2/queue/status (the key's running and queued counts)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import wire
from ..api_keys import fingerprint
from ..faults import FaultContext
from ..lifecycle import Status
from .dependencies import (
    MALFORMED,
    Auth,
    Faults,
    State,
    envelope_error,
    link_base,
    read_json,
    v2_error,
)

QUERY_PATH = "/openapi/v2/query"
QUEUE_PATH = "/openapi/v2/queue/status"

router = APIRouter()


@router.post(QUERY_PATH)
async def query(request: Request, st: State, auth: Auth, faults: Faults) -> Response:
    body = await read_json(request)
    task_id = body.get("taskId") if isinstance(body, dict) else None
    resp = await faults.check("query", faults.task_context(task_id), v2_error)
    if resp is not None:
        return resp
    if body is MALFORMED:
        return wire.html_page(400)
    key = auth.bearer()
    if key is None:
        return wire.v2_rejection("1002", "invalid api key")
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or task_id == "":
        return wire.v2_rejection("1007", "taskId: is required (a string)")
    task = st.find(str(task_id), fingerprint(key))
    if task is None:
        return wire.v2_rejection("1004", "task not found or expired")
    return JSONResponse(st.render(task, link_base(request)))


@router.get(QUEUE_PATH)
async def queue_status(st: State, auth: Auth, faults: Faults) -> Response:
    resp = await faults.check("queue", FaultContext(), envelope_error)
    if resp is not None:
        return resp
    key = auth.bearer()
    if key is None:
        return wire.envelope(1002, "invalid api key")
    counts = st.active_counts(fingerprint(key))
    running = counts[Status.RUNNING]
    queued = counts[Status.QUEUED] + counts[Status.CREATE]
    return wire.envelope(
        0,
        "success",
        {
            "apiKeyType": st.config.api_key_type,
            "concurrentLimit": str(st.config.concurrency_limit),
            "runningCount": str(running),
            "queuedCount": str(queued),
            "totalCurrentTasks": str(running + queued),
        },
    )
