"""What the routes share: the state, the caller's API key, fault injection, request bodies.

`State`, `Auth` and `Faults` are FastAPI dependencies. None of them answers a request on its
own: the order of a route's checks is part of the wire contract (an injected fault first, then
a malformed body, then the key, then the fields), so each dependency only hands the route what
it checks, and the route decides when. They are `async def` so FastAPI runs them on the event
loop, not in a worker thread per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from .. import wire
from ..api_keys import bearer_key, body_key
from ..connection import drop
from ..faults import GENERIC_KINDS, FaultContext, FaultRule
from ..state import SandboxState

# How an injected `error_code` looks on a route: (code, message) -> that route's error body.
ErrorShape = Callable[[Any, str], Response]
MALFORMED = object()  # what `read_json` returns for a body that is not JSON


def state_of(request: Request) -> SandboxState:
    """The state of the app serving `request` (set by `create_app`)."""
    state: SandboxState = request.app.state.sandbox
    return state


async def sandbox_state(request: Request) -> SandboxState:
    return state_of(request)


State = Annotated[SandboxState, Depends(sandbox_state)]


def link_base(request: Request) -> str:
    """Base URL of the links in an answer: the configured public URL or the server's own
    bound address, never the Host header."""
    return state_of(request).link_base(request.scope.get("server"))


# ---------------------------------------------------------------- auth
class ApiKey:
    """The API key a request presents, checked against the configured keys when the route
    asks (a test may PATCH `api_keys` while a `slow` fault holds the request).

    v2 endpoints take `Authorization: Bearer <key>` (an `apiKey` in the body is ignored);
    legacy endpoints (`/uc/openapi/accountStatus`, `/task/openapi/cancel`) take the key from
    the body (`apikey`/`apiKey`) or else the Bearer header.
    """

    def __init__(self, request: Request, state: SandboxState) -> None:
        self._authorization = request.headers.get("authorization")
        self._state = state

    def bearer(self) -> str | None:
        """The valid key of a v2 request, or None."""
        return self._valid(bearer_key(self._authorization))

    def legacy(self, body: Any) -> str | None:
        """The valid key of a legacy request with JSON `body`, or None."""
        return self._valid(body_key(body) or bearer_key(self._authorization))

    def _valid(self, key: str | None) -> str | None:
        return key if key and key in self._state.config.api_keys else None


async def api_key(request: Request, state: State) -> ApiKey:
    return ApiKey(request, state)


Auth = Annotated[ApiKey, Depends(api_key)]


# ---------------------------------------------------------------- faults
class FaultGate:
    """Fault injection as one request meets it (kinds and params: see faults.py)."""

    def __init__(self, request: Request, state: SandboxState) -> None:
        self._request = request
        self._state = state

    async def take(
        self, route: str, ctx: FaultContext, kinds: frozenset[str] = GENERIC_KINDS
    ) -> FaultRule | None:
        """The first matching fault rule of `kinds`, after serving any `slow` delay."""
        engine = self._state.faults
        rule = engine.take(route, ctx, kinds | {"slow"})
        if rule is not None and rule.kind == "slow":
            await asyncio.sleep(float(rule.params.get("seconds", 1.0)))
            rule = engine.take(route, ctx, kinds)
        return rule

    def answer(self, rule: FaultRule, error: ErrorShape) -> Response:
        """The answer a generic fault gives; `error` shapes an injected error code."""
        p = rule.params
        if rule.kind == "http_500_html":
            return wire.html_page(int(p.get("status", 500)))
        if rule.kind == "http_429":
            return wire.html_page(429, headers={"Retry-After": str(p.get("retry_after", 1))})
        if rule.kind == "error_code":
            return error(p.get("code", "1011"), str(p.get("message", "service busy")))
        if rule.kind == "non_json":
            return wire.html_page(int(p.get("page", 502)), http_status=int(p.get("status", 200)))
        return drop(self._request)  # "reset"

    async def check(self, route: str, ctx: FaultContext, error: ErrorShape) -> Response | None:
        """The injected answer to this request, or None when no fault hits it."""
        rule = await self.take(route, ctx)
        return None if rule is None else self.answer(rule, error)

    def task_context(self, task_id: Any) -> FaultContext:
        """What a request about `task_id` (as sent, any JSON type) matches fault rules with."""
        task = self._state.find(str(task_id)) if isinstance(task_id, str | int) else None
        if task is None:
            return FaultContext(task_id=str(task_id) if task_id is not None else None)
        return FaultContext(task.prompt, task.task_id, (task.model.key, *task.model.paths))


async def fault_gate(request: Request, state: State) -> FaultGate:
    return FaultGate(request, state)


Faults = Annotated[FaultGate, Depends(fault_gate)]


def _code(value: Any) -> Any:
    """An injected code as an int where it is numeric (legacy envelopes use numbers)."""
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def v2_error(code: Any, message: str) -> Response:
    return wire.v2_rejection(str(code), message)


def envelope_error(code: Any, message: str) -> Response:
    return wire.envelope(_code(code), message)


def upload_error(code: Any, message: str) -> Response:
    return wire.upload_error(_code(code), message)


# ---------------------------------------------------------------- bodies
async def read_json(request: Request, *, empty: Any = MALFORMED) -> Any:
    """The parsed JSON body, `MALFORMED` if unparsable, `empty` if there is no body."""
    raw = await request.body()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return MALFORMED


def prompt_of(body: Any) -> str | None:
    """The `prompt` of a JSON body, if it has a string one (fault rules match on it)."""
    prompt = body.get("prompt") if isinstance(body, dict) else None
    return prompt if isinstance(prompt, str) else None


async def drain(stream: AsyncIterator[bytes]) -> None:
    """Read the rest of a request body, discarding it, before answering."""
    async for _ in stream:
        pass
