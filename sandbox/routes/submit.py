"""POST /openapi/v2/<model endpoint>, one route per model path: create and bill a task.

A submit is checked in the wire's order (fault, malformed body, key, fields), then the state
checks concurrency and balance; an accepted task is billed before the answer is sent, so a
`lost_response` fault leaves a paid task whose id the client never sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import wire
from ..connection import drop
from ..faults import FaultContext
from ..models_table import MODELS, ModelSpec
from ..state import Refusal
from ..validation import FieldError, validate_submit
from .dependencies import (
    MALFORMED,
    Auth,
    Faults,
    State,
    link_base,
    prompt_of,
    read_json,
    v2_error,
)

Endpoint = Callable[..., Awaitable[Response]]


def _submit_to(spec: ModelSpec) -> Endpoint:
    async def submit(request: Request, st: State, auth: Auth, faults: Faults) -> Response:
        st.count_submit()
        body = await read_json(request)
        ctx = FaultContext(prompt_of(body), None, (spec.key, *spec.paths))
        resp = await faults.check("submit", ctx, v2_error)
        if resp is not None:
            return resp
        if body is MALFORMED:
            return wire.html_page(400)
        key = auth.bearer()
        if key is None:
            return wire.v2_rejection("1002", "invalid api key")
        try:
            params = validate_submit(spec, body)
        except FieldError as exc:
            return wire.v2_rejection("1007", str(exc))
        outcome = st.accept(key, spec, request.url.path, params, body)
        if isinstance(outcome, Refusal):
            return wire.v2_rejection(outcome.code, outcome.message)
        lost_ctx = FaultContext(ctx.prompt, outcome.task_id, ctx.model)
        if st.faults.take("submit", lost_ctx, {"lost_response"}) is not None:
            return drop(request)
        return JSONResponse(st.render(outcome, link_base(request)))

    return submit


router = APIRouter()
for _spec in MODELS:
    for _path in _spec.paths:
        router.post(_path, name=f"submit:{_path}")(_submit_to(_spec))
