"""`create_app()`: the sandbox as an ASGI app, wired from the routers in `sandbox.routes`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import wire
from .config import SandboxConfig
from .connection import SandboxApp
from .routes import ROUTERS
from .state import SandboxState


def create_app(
    config: SandboxConfig | None = None, *, state: SandboxState | None = None
) -> FastAPI:
    """The sandbox ASGI app. Pass `state` to share it with the caller (SandboxServer does).

    The lifespan starts the lifecycle worker and, at shutdown, stops it and removes the
    temporary data directory (when the state created one).
    """
    st = state if state is not None else SandboxState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        st.start()
        try:
            yield
        finally:
            st.close()

    app = SandboxApp(
        title="RunningHub sandbox",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sandbox = st
    app.add_exception_handler(StarletteHTTPException, _gateway_page)
    for router in ROUTERS:
        app.include_router(router)
    return app


async def _gateway_page(request: Request, exc: Exception) -> Response:
    """Unknown path (404), wrong method (405) and the like: an nginx page, as RunningHub's
    gateway answers before any JSON API is reached."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    return wire.html_page(status)
