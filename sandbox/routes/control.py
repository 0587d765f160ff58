"""`/_sandbox/*`: the control API for tests and demos (no auth): health, the ledger of billed
submits, tasks as the sandbox sees them, reset, config, and fault rules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..faults import FaultSpecError
from .dependencies import State, link_base, read_json

router = APIRouter(prefix="/_sandbox")


def _not_an_object() -> Response:
    return JSONResponse({"error": "body must be a JSON object"}, status_code=400)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return {"ok": True, "base_url": link_base(request)}


@router.get("/ledger")
async def ledger(st: State) -> dict[str, Any]:
    return st.ledger_view()


@router.get("/tasks")
async def tasks(request: Request, st: State) -> dict[str, Any]:
    base = link_base(request)
    return {"tasks": [st.task_view(t, base) for t in st.task_ids()]}


@router.get("/tasks/{task_id}")
async def task(request: Request, task_id: str, st: State) -> Response:
    view = st.task_view(task_id, link_base(request))
    if view is None:
        return JSONResponse({"error": "unknown task"}, status_code=404)
    return JSONResponse(view)


@router.post("/reset")
async def reset(st: State) -> dict[str, Any]:
    st.reset()
    return {"ok": True}


@router.get("/config")
async def get_config(st: State) -> dict[str, Any]:
    return st.config_view()


@router.patch("/config")
async def patch_config(request: Request, st: State) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return _not_an_object()
    try:
        return JSONResponse(st.update_config(body))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


@router.get("/faults")
async def list_faults(st: State) -> dict[str, Any]:
    return {"faults": st.faults.views()}


@router.post("/faults")
async def add_fault(request: Request, st: State) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return _not_an_object()
    try:
        rule = st.faults.add(body)
    except FaultSpecError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(rule.view(), status_code=201)


@router.delete("/faults")
async def clear_faults(st: State) -> dict[str, Any]:
    st.faults.clear()
    return {"ok": True}
