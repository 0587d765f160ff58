"""POST /task/openapi/cancel (legacy key): CANCEL a task of this key; nothing is refunded.

807 for a task this key doesn't know, 817 for one that already ended (runninghub-api.md §5)."""

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
    outcome = st.cancel(str(task_id), fingerprint(key)) if known else "not_found"
    if outcome == "not_found":
        return JSONResponse({"code": 807, "msg": "APIKEY_TASK_NOT_FOUND"})
    if outcome == "ended":
        return JSONResponse({"code": 817, "msg": "APIKEY_TASK_CANCEL_NOT_ALLOWED"})
    return JSONResponse({"code": 0, "msg": "success"})
