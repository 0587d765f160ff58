"""HTTP routes: the RunningHub-compatible API, signed file links, and the `/_sandbox` control API.

Auth: v2 endpoints take `Authorization: Bearer <key>` (an `apiKey` in the body is ignored);
legacy endpoints (`/uc/openapi/accountStatus`, `/task/openapi/cancel`) take the key from the
body (`apikey`/`apiKey`) or the Bearer header. Every link is built from the configured public
URL or the server's own bound address, never from the Host header.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import wire
from .api_keys import bearer_key, body_key, fingerprint
from .config import SandboxConfig
from .faults import GENERIC_KINDS, LINK_KINDS, FaultContext, FaultRule, FaultSpecError
from .files import Unsatisfiable, expired_xml, http_date, oss_error_xml, parse_range, read_chunks
from .lifecycle import Status
from .models_table import MODELS, ModelSpec, model_for_price_preview
from .processing import FETCH_HEADER
from .state import Refusal, SandboxState
from .upload_parser import (
    MultipartError,
    TooLarge,
    UploadedFile,
    boundary_of,
    save_file_field,
)
from .validation import FieldError, validate_submit

UPLOAD_PATH = "/openapi/v2/media/upload/binary"
QUERY_PATH = "/openapi/v2/query"
QUEUE_PATH = "/openapi/v2/queue/status"
PRICE_PREFIX = "/openapi/v2/price-preview/"
ACCOUNT_PATH = "/uc/openapi/accountStatus"
CANCEL_PATH = "/task/openapi/cancel"

ErrorMaker = Callable[[Any, str], Response]
Scope = MutableMapping[str, Any]
_MALFORMED = object()
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_MEDIA_TYPES = {
    "video": {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"},
    "audio": {".mp3", ".wav", ".m4a", ".aac", ".flac", ".ogg"},
    "image": {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"},
}


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
    """FastAPI that can cut a connection: the `reset`, `lost_response` and
    `truncate_download` faults need a real dropped socket, which plain ASGI can't express.
    uvicorn closes the transport when the app returns a non-None value."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return None
        control = ConnectionControl()
        scope["sandbox.control"] = control

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            if not control.drop:
                await send(message)

        await super().__call__(scope, receive, guarded_send)
        return DROP if control.drop else None


def _drop(request: Request) -> Response:
    control = request.scope.get("sandbox.control")
    if isinstance(control, ConnectionControl):
        control.drop = True
    return Response(status_code=500)


def _dropped(request: Request) -> bool:
    control = request.scope.get("sandbox.control")
    return isinstance(control, ConnectionControl) and control.drop


def _code(value: Any) -> Any:
    """An injected code as an int where it is numeric (legacy envelopes use numbers)."""
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


async def _read_json(request: Request, *, empty: Any = _MALFORMED) -> Any:
    """The parsed JSON body, `_MALFORMED` if unparsable, `empty` if there is no body."""
    raw = await request.body()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _MALFORMED


async def _drain(stream: AsyncIterator[bytes]) -> None:
    async for _ in stream:
        pass


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
    _Routes(st).register(app)
    return app


class _Routes:
    def __init__(self, state: SandboxState) -> None:
        self.st = state

    # ---------------------------------------------------------------- helpers
    @property
    def cfg(self) -> SandboxConfig:
        return self.st.config

    def base(self, request: Request) -> str:
        return self.st.link_base(request.scope.get("server"))

    def valid_key(self, key: str | None) -> str | None:
        return key if key and key in self.cfg.api_keys else None

    async def take_fault(
        self, route: str, ctx: FaultContext, kinds: frozenset[str] = GENERIC_KINDS
    ) -> FaultRule | None:
        """The first matching fault rule of `kinds`, after serving any `slow` delay."""
        rule = self.st.faults.take(route, ctx, kinds | {"slow"})
        if rule is not None and rule.kind == "slow":
            await asyncio.sleep(float(rule.params.get("seconds", 1.0)))
            rule = self.st.faults.take(route, ctx, kinds)
        return rule

    @staticmethod
    def fault_response(request: Request, rule: FaultRule, error: ErrorMaker) -> Response:
        """The answer a generic fault gives (see faults.py)."""
        p = rule.params
        if rule.kind == "http_500_html":
            return wire.html_page(int(p.get("status", 500)))
        if rule.kind == "http_429":
            return wire.html_page(429, headers={"Retry-After": str(p.get("retry_after", 1))})
        if rule.kind == "error_code":
            return error(p.get("code", "1011"), str(p.get("message", "service busy")))
        if rule.kind == "non_json":
            return wire.html_page(int(p.get("page", 502)), http_status=int(p.get("status", 200)))
        return _drop(request)  # "reset"

    async def fault(
        self, request: Request, route: str, ctx: FaultContext, error: ErrorMaker
    ) -> Response | None:
        rule = await self.take_fault(route, ctx)
        return None if rule is None else self.fault_response(request, rule, error)

    @staticmethod
    def v2_error(code: Any, message: str) -> Response:
        return wire.v2_rejection(str(code), message)

    @staticmethod
    def envelope_error(code: Any, message: str) -> Response:
        return wire.envelope(_code(code), message)

    @staticmethod
    def upload_error(code: Any, message: str) -> Response:
        return wire.upload_error(_code(code), message)

    def task_ctx(self, task_id: Any) -> FaultContext:
        task = self.st.find(str(task_id)) if isinstance(task_id, str | int) else None
        if task is None:
            return FaultContext(task_id=str(task_id) if task_id is not None else None)
        return FaultContext(task.prompt, task.task_id, (task.model.key, *task.model.paths))

    # ---------------------------------------------------------------- registration
    def register(self, app: FastAPI) -> None:
        app.add_exception_handler(StarletteHTTPException, self.http_error)
        app.post(UPLOAD_PATH)(self.upload)
        for spec in MODELS:
            for path in spec.paths:
                app.post(path, name=f"submit:{path}")(self.submit_for(spec))
        app.post(QUERY_PATH)(self.query)
        app.post(PRICE_PREFIX + "{rest:path}")(self.price_preview)
        app.get(QUEUE_PATH)(self.queue_status)
        app.post(ACCOUNT_PATH)(self.account_status)
        app.post(CANCEL_PATH)(self.cancel)
        app.api_route("/files/{token}/{name}", methods=["GET", "HEAD"])(self.download)
        control = _Control(self.st, self)
        control.register(app)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        return wire.html_page(status)

    # ---------------------------------------------------------------- upload
    async def upload(self, request: Request) -> Response:
        stream = request.stream()
        resp = await self.fault(request, "upload", FaultContext(), self.upload_error)
        if resp is not None:
            if not _dropped(request):
                await _drain(stream)
            return resp
        if self.valid_key(bearer_key(request.headers.get("authorization"))) is None:
            await _drain(stream)
            return wire.upload_error(401, "invalid api key")
        content_type = request.headers.get("content-type")
        try:
            boundary_of(content_type)
        except MultipartError as exc:
            await _drain(stream)
            return wire.upload_error(1007, f"file: {exc}")
        tmp = self.st.files.new_path("uploads", ".part")
        try:
            uploaded = await save_file_field(
                stream, content_type, tmp, max_bytes=self.cfg.max_upload_bytes
            )
        except TooLarge:
            return wire.upload_error(809, "file too large")
        except MultipartError as exc:
            await _drain(stream)
            return wire.upload_error(808, f"upload failed: {exc}")
        if uploaded is None:
            return wire.upload_error(1007, "file: multipart field 'file' is required")
        if uploaded.size == 0:
            tmp.unlink(missing_ok=True)
            return wire.upload_error(1007, "file: is empty")
        return self._publish_upload(request, uploaded)

    def _publish_upload(self, request: Request, uploaded: UploadedFile) -> Response:
        """Give the stored part its final name and a signed link (the wire's upload answer)."""
        match = _SUFFIX.search(uploaded.filename)
        mime = uploaded.content_type.split(";")[0].strip()
        suffix = match.group(0).lower() if match else (mimetypes.guess_extension(mime) or ".bin")
        media = next((k for k, exts in _MEDIA_TYPES.items() if suffix in exts), "file")
        hex_name = f"{secrets.token_hex(16)}{suffix}"
        final = uploaded.path.with_name(hex_name)
        uploaded.path.rename(final)
        entry = self.st.files.add(final, hex_name, "upload")
        return JSONResponse(
            {
                "code": 0,
                "message": "success",
                "data": {
                    "type": media,
                    "download_url": entry.url(self.base(request)),
                    "fileName": f"openapi/{hex_name}",
                    "size": str(uploaded.size),
                },
            }
        )

    # ---------------------------------------------------------------- submit / query
    def submit_for(self, spec: ModelSpec) -> Callable[[Request], Awaitable[Response]]:
        async def submit(request: Request) -> Response:
            return await self.submit(request, spec)

        return submit

    async def submit(self, request: Request, spec: ModelSpec) -> Response:
        self.st.count_submit()
        body = await _read_json(request)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        ctx = FaultContext(
            prompt if isinstance(prompt, str) else None, None, (spec.key, *spec.paths)
        )
        resp = await self.fault(request, "submit", ctx, self.v2_error)
        if resp is not None:
            return resp
        if body is _MALFORMED:
            return wire.html_page(400)
        key = self.valid_key(bearer_key(request.headers.get("authorization")))
        if key is None:
            return wire.v2_rejection("1002", "invalid api key")
        try:
            params = validate_submit(spec, body)
        except FieldError as exc:
            return wire.v2_rejection("1007", str(exc))
        outcome = self.st.accept(key, spec, request.url.path, params, body)
        if isinstance(outcome, Refusal):
            return wire.v2_rejection(outcome.code, outcome.message)
        lost_ctx = FaultContext(ctx.prompt, outcome.task_id, ctx.model)
        if self.st.faults.take("submit", lost_ctx, {"lost_response"}) is not None:
            return _drop(request)
        return JSONResponse(self.st.render(outcome, self.base(request)))

    async def query(self, request: Request) -> Response:
        body = await _read_json(request)
        task_id = body.get("taskId") if isinstance(body, dict) else None
        resp = await self.fault(request, "query", self.task_ctx(task_id), self.v2_error)
        if resp is not None:
            return resp
        if body is _MALFORMED:
            return wire.html_page(400)
        key = self.valid_key(bearer_key(request.headers.get("authorization")))
        if key is None:
            return wire.v2_rejection("1002", "invalid api key")
        if isinstance(task_id, bool) or not isinstance(task_id, str | int) or task_id == "":
            return wire.v2_rejection("1007", "taskId: is required (a string)")
        task = self.st.find(str(task_id), fingerprint(key))
        if task is None:
            return wire.v2_rejection("1004", "task not found or expired")
        return JSONResponse(self.st.render(task, self.base(request)))

    # ---------------------------------------------------------------- account & co
    async def price_preview(self, request: Request, rest: str) -> Response:
        body = await _read_json(request)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        ctx = FaultContext(prompt if isinstance(prompt, str) else None)
        resp = await self.fault(request, "price", ctx, self.envelope_error)
        if resp is not None:
            return resp
        if body is _MALFORMED:
            return wire.html_page(400)
        if self.valid_key(bearer_key(request.headers.get("authorization"))) is None:
            return wire.envelope(1002, "invalid api key", message="invalid api key")
        spec = model_for_price_preview(rest)
        if spec is None:
            return wire.envelope(1001, f"unknown endpoint: {rest}", message="unknown endpoint")
        try:
            params = validate_submit(spec, body)
        except FieldError as exc:
            return wire.envelope(1007, str(exc), message=str(exc))
        price = wire.money(spec.price(params))
        return wire.envelope(0, "success", {"estimatedPrice": price, "currency": self.cfg.currency})

    async def queue_status(self, request: Request) -> Response:
        resp = await self.fault(request, "queue", FaultContext(), self.envelope_error)
        if resp is not None:
            return resp
        key = self.valid_key(bearer_key(request.headers.get("authorization")))
        if key is None:
            return wire.envelope(1002, "invalid api key")
        counts = self.st.active_counts(fingerprint(key))
        running = counts[Status.RUNNING]
        queued = counts[Status.QUEUED] + counts[Status.CREATE]
        return wire.envelope(
            0,
            "success",
            {
                "apiKeyType": self.cfg.api_key_type,
                "concurrentLimit": str(self.cfg.concurrency_limit),
                "runningCount": str(running),
                "queuedCount": str(queued),
                "totalCurrentTasks": str(running + queued),
            },
        )

    def legacy_key(self, request: Request, body: Any) -> str | None:
        key = body_key(body) or bearer_key(request.headers.get("authorization"))
        return self.valid_key(key)

    async def account_status(self, request: Request) -> Response:
        body = await _read_json(request, empty={})  # a Bearer header alone is enough
        resp = await self.fault(request, "account", FaultContext(), self.envelope_error)
        if resp is not None:
            return resp
        if body is _MALFORMED:
            return wire.html_page(400)
        key = self.legacy_key(request, body)
        if key is None:
            return wire.envelope(802, "APIKEY_INVALID")
        counts = self.st.active_counts(fingerprint(key))
        active = sum(
            n for s, n in counts.items() if s in (Status.CREATE, Status.QUEUED, Status.RUNNING)
        )
        balance = self.st.balance
        return wire.envelope(
            0,
            "success",
            {
                "remainCoins": str(self.cfg.remain_coins),
                "currentTaskCounts": str(active),
                "remainMoney": None if balance is None else wire.money(balance),
                "currency": self.cfg.currency,
                "apiType": "NORMAL",
            },
        )

    async def cancel(self, request: Request) -> Response:
        body = await _read_json(request)
        task_id = body.get("taskId") if isinstance(body, dict) else None
        resp = await self.fault(request, "cancel", self.task_ctx(task_id), self.envelope_error)
        if resp is not None:
            return resp
        if body is _MALFORMED:
            return wire.html_page(400)
        key = self.legacy_key(request, body)
        if key is None:
            return wire.envelope(802, "APIKEY_INVALID")
        known = isinstance(task_id, str | int) and not isinstance(task_id, bool)
        if not known or not self.st.cancel(str(task_id), fingerprint(key)):
            return JSONResponse({"code": 807, "msg": "TASK_NOT_FOUND"})
        return JSONResponse({"code": 0, "msg": "success"})

    # ---------------------------------------------------------------- file links
    async def download(self, request: Request, token: str, name: str) -> Response:
        entry = self.st.files.get(token, name)
        truncate_at: int | None = None
        expire = False
        if request.headers.get(FETCH_HEADER) != "1":  # the sandbox's own fetch: see route "fetch"
            ctx = self.task_ctx(entry.task_id) if entry and entry.task_id else FaultContext()
            rule = await self.take_fault("download", ctx, GENERIC_KINDS | LINK_KINDS)
            if rule is not None and rule.kind == "expire_urls":
                expire = True
            elif rule is not None and rule.kind == "truncate_download":
                if entry is not None:
                    truncate_at = int(rule.params.get("bytes", entry.size // 2))
            elif rule is not None:
                return self.fault_response(request, rule, self.upload_error)
        if entry is None:
            body = oss_error_xml("NoSuchKey", "The specified key does not exist.")
            return Response(body, status_code=404, media_type="application/xml")
        ttl = self.cfg.url_ttl_seconds
        if expire or entry.expired(ttl):
            body = expired_xml(min(entry.expires_at(ttl), time.time()))
            return Response(body, status_code=403, media_type="application/xml")
        return self._serve(request, entry, truncate_at)

    def _serve(self, request: Request, entry: Any, truncate_at: int | None) -> Response:
        size = entry.size
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{entry.token[:16]}-{size}"',
            "Last-Modified": http_date(entry.created_at),
            "Cache-Control": "private, max-age=0",
        }
        media = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        try:
            selected = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        status, start, length = 200, 0, size
        if selected is not None:
            start, end = selected
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=media)
        control = request.scope.get("sandbox.control")

        def cut() -> None:
            if isinstance(control, ConnectionControl):
                control.drop = True

        chunks = read_chunks(entry.path, start, length, stop_after=truncate_at, on_stop=cut)
        return StreamingResponse(chunks, status_code=status, headers=headers, media_type=media)


class _Control:
    """`/_sandbox/*`: no auth, for tests and demos only."""

    def __init__(self, state: SandboxState, routes: _Routes) -> None:
        self.st = state
        self.routes = routes

    def register(self, app: FastAPI) -> None:
        app.get("/_sandbox/health")(self.health)
        app.get("/_sandbox/ledger")(self.ledger)
        app.get("/_sandbox/tasks")(self.tasks)
        app.get("/_sandbox/tasks/{task_id}")(self.task)
        app.post("/_sandbox/reset")(self.reset)
        app.get("/_sandbox/config")(self.get_config)
        app.patch("/_sandbox/config")(self.patch_config)
        app.get("/_sandbox/faults")(self.list_faults)
        app.post("/_sandbox/faults")(self.add_fault)
        app.delete("/_sandbox/faults")(self.clear_faults)

    async def health(self, request: Request) -> dict[str, Any]:
        return {"ok": True, "base_url": self.routes.base(request)}

    async def ledger(self) -> dict[str, Any]:
        return self.st.ledger_view()

    async def tasks(self, request: Request) -> dict[str, Any]:
        base = self.routes.base(request)
        return {"tasks": [self.st.task_view(t, base) for t in self.st.task_ids()]}

    async def task(self, request: Request, task_id: str) -> Response:
        view = self.st.task_view(task_id, self.routes.base(request))
        if view is None:
            return JSONResponse({"error": "unknown task"}, status_code=404)
        return JSONResponse(view)

    async def reset(self) -> dict[str, Any]:
        self.st.reset()
        return {"ok": True}

    async def get_config(self) -> dict[str, Any]:
        return self.st.config_view()

    async def patch_config(self, request: Request) -> Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            return JSONResponse(self.st.update_config(body))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def list_faults(self) -> dict[str, Any]:
        return {"faults": self.st.faults.views()}

    async def add_fault(self, request: Request) -> Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            rule = self.st.faults.add(body)
        except FaultSpecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(rule.view(), status_code=201)

    async def clear_faults(self) -> dict[str, Any]:
        self.st.faults.clear()
        return {"ok": True}
