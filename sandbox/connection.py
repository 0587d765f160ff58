"""Cutting a connection on purpose, for the `reset`, `lost_response` and `truncate_download` faults.

Plain ASGI can't express a dropped socket, but uvicorn closes the transport when the app
returns a non-None value. `SandboxApp` gives each HTTP request a `ConnectionControl` switch in
its scope; once a route sets it (`drop`, or the callback from `cutter`), nothing more is sent
and the app returns `DROP`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

Scope = MutableMapping[str, Any]
SCOPE_KEY = "sandbox.control"


class _DropMarker:
    """Returned to uvicorn to make it close the connection without (finishing) a response."""

    def __repr__(self) -> str:
        return "sandbox-drop-connection"


DROP = _DropMarker()


class ConnectionControl:
    """Per-request switch: once `drop` is set, nothing more is sent and the socket closes."""

    def __init__(self) -> None:
        self.drop = False


class SandboxApp(FastAPI):
    """FastAPI that can cut a connection (see the module docstring)."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return None
        control = ConnectionControl()
        scope[SCOPE_KEY] = control

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            if not control.drop:
                await send(message)

        await super().__call__(scope, receive, guarded_send)
        return DROP if control.drop else None


def _control(request: Request) -> ConnectionControl | None:
    control = request.scope.get(SCOPE_KEY)
    return control if isinstance(control, ConnectionControl) else None


def drop(request: Request) -> Response:
    """Cut this request's connection; the response returned is never sent."""
    control = _control(request)
    if control is not None:
        control.drop = True
    return Response(status_code=500)


def dropped(request: Request) -> bool:
    control = _control(request)
    return control is not None and control.drop


def cutter(request: Request) -> Callable[[], None]:
    """A callback that cuts this request's connection later, e.g. in the middle of a body."""
    control = _control(request)

    def cut() -> None:
        if control is not None:
            control.drop = True

    return cut
