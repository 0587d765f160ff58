"""POST /task/openapi/cancel (legacy key): CANCEL a task of this key; nothing is refunded."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import wire
from ..api_keys import fingerprint
from .dependencies import MALFORMED, Auth, Faults, State, envelope_error, read_json

CANCEL_PATH = "/task/openapi/cancel"

router = APIRouter()


@router.post(CANCEL_PATH)
async def cancel(request: Request, st: State, auth: Auth, faults: Faults) -> Response:
    body = await read_json(request)
    task_id = body.get("taskId") if isinstance(body, dict) else None
    resp = await faults.check("cancel", faults.task_context(task_id), envelope_error)
    if resp is not None:
        return resp
    if body is MALFORMED:
        return wire.html_page(400)
    key = auth.legacy(body)
    if key is None:
        return wire.envelope(802, "APIKEY_INVALID")
    known = isinstance(task_id, str | int) and not isinstance(task_id, bool)
    if not known or not st.cancel(str(task_id), fingerprint(key)):
        return JSONResponse({"code": 807, "msg": "TASK_NOT_FOUND"})
    return JSONResponse({"code": 0, "msg": "success"})
