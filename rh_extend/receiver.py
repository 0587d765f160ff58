"""`rh-extend receiver`: HTTP in, Prefect events out (self-hosted Prefect has no webhooks).

    POST /runninghub/webhook   RunningHub's TASK_END callback → `rh-extend.runninghub.task-end`
    POST /videos               an authenticated "new video" notice → `rh-extend.video.arrived`,
                               which the `extend-video` deployment's trigger turns into a run
    GET  /health

RunningHub signs nothing, so a webhook is only a hint: the receiver parses it (the body, then
its `eventData` string), drops repeats of a taskId it already handled, asks `/openapi/v2/query`
what the task really is, and emits an event only for a task that really ended. An optional
`RH_EXTEND_RECEIVER_WEBHOOK_TOKEN` must then appear as `?token=` in the webhook URL.

`/videos` needs `Authorization: Bearer <RH_EXTEND_RECEIVER_SECRET>` (compared in constant time).
Body: `{"source": "s3://…|https://…", "model": "…", "prompt": "…", "params": {…}, "id": "…"}`;
`params` takes extend_video's optional parameters (duration, resolution, cut_type,
negative_prompt, seed, take, max_cost); `id` (optional) is the caller's idempotency key. The
event id is derived from `id`, or else from the request itself, so the same arrival posted twice
is one event to Prefect; and the request key + submission record inside `extend_video` make the
same video + parameters one paid submit whatever arrives.

Bad bodies get 400/413/422, unauthenticated ones 401; none of them emits anything or changes
the dedupe memory. When Prefect or RunningHub can't be reached the answer is 503 (retry later).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from rh_extend.deployments.definitions import (
    VIDEO_ARRIVED,
    VIDEO_RESOURCE_PREFIX,
    event_param_names,
)

TASK_END = "rh-extend.runninghub.task-end"
MAX_BODY_BYTES = 64 * 1024
EVENT_NAMESPACE = uuid.UUID("6c1b9d52-6b8e-4d7e-9a55-3f1f3c0d2a10")
logger = logging.getLogger("rh_extend.receiver")


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RH_EXTEND_RECEIVER_", extra="ignore")

    secret: SecretStr | None = None
    webhook_token: SecretStr | None = None
    dedupe_ttl_s: float = 24 * 3600.0
    dedupe_max: int = 100_000
    host: str = "127.0.0.1"
    port: int = 8780


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Seen:
    """A bounded memory of handled keys with an expiry, and of keys being handled right now."""

    def __init__(self, ttl_s: float, max_size: int) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._done: OrderedDict[str, float] = OrderedDict()
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def start(self, key: str) -> bool:
        """True when nobody handled or is handling `key`; it is then ours until done/abandon."""
        now = time.monotonic()
        with self._lock:
            while self._done and next(iter(self._done.values())) < now:
                self._done.popitem(last=False)
            if key in self._busy or key in self._done:
                return False
            self._busy.add(key)
            return True

    def done(self, key: str) -> None:
        with self._lock:
            self._busy.discard(key)
            self._done[key] = time.monotonic() + self.ttl_s
            while len(self._done) > self.max_size:
                self._done.popitem(last=False)

    def abandon(self, key: str) -> None:
        with self._lock:
            self._busy.discard(key)


EventSink = Callable[[list[dict[str, Any]]], Awaitable[None]]
TaskLookup = Callable[[str], Any]


async def post_to_prefect(events: list[dict[str, Any]]) -> None:
    """Record events with the Prefect API (PREFECT_API_URL) and wait for it to accept them."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client.request("POST", "/events", json=events)
        response.raise_for_status()


def query_task(task_id: str) -> Any:
    from rh_extend.clients import runninghub_client
    from rh_extend.settings import load_settings

    with runninghub_client(load_settings()) as client:
        return client.query(task_id)


def make_event(
    name: str, resource: dict[str, str], payload: dict[str, Any], event_id: uuid.UUID
) -> dict[str, Any]:
    from prefect.events import Event

    event = Event.model_validate(
        {"event": name, "resource": resource, "payload": payload, "id": event_id}
    )
    return dict(event.model_dump(mode="json"))


# ------------------------------------------------------------------------------ parsing


def _json_object(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(422, "body must be a JSON object")
    return body


def parse_webhook(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(taskId, eventData) of a TASK_END callback; eventData is JSON inside a JSON string."""
    body = _json_object(raw)
    if body.get("event") != "TASK_END":
        raise BadRequest(422, f"event must be 'TASK_END', not {body.get('event')!r}")
    task_id = str(body.get("taskId") or "").strip()
    if not task_id.isdigit() or len(task_id) > 32:
        raise BadRequest(422, "taskId must be a string of digits")
    data: Any = body.get("eventData")
    for _ in range(2):  # a JSON string, sometimes encoded twice
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                raise BadRequest(422, "eventData is not JSON") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(422, "eventData must hold a JSON object")
    inner = str(data.get("taskId") or task_id)
    if inner != task_id:
        raise BadRequest(422, f"eventData.taskId {inner!r} does not match taskId {task_id!r}")
    return task_id, data


def parse_arrival(raw: bytes, allow_http: bool) -> tuple[dict[str, Any], str | None]:
    """The arrival payload (source, model, prompt, params with every key) and the caller's id."""
    from rh_extend.request import ExtendRequest
    from runninghub import CATALOG, InputValidationError

    body = _json_object(raw)
    unknown = sorted(set(body) - {"source", "model", "prompt", "params", "id"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {unknown}")
    source = body.get("source")
    schemes = ("s3://", "https://", "http://") if allow_http else ("s3://", "https://")
    if not isinstance(source, str) or not source.startswith(schemes) or len(source) > 2048:
        raise BadRequest(422, f"source must be a URI starting with {' or '.join(schemes)}")
    model = body.get("model")
    if not isinstance(model, str) or model not in CATALOG:
        raise BadRequest(422, f"model must be one of {', '.join(CATALOG)}")
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise BadRequest(422, "prompt must be a string")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest(422, "params must be a JSON object")
    names = event_param_names()
    extra = sorted(set(params) - set(names))
    if extra:
        raise BadRequest(422, f"unknown params {extra}; allowed {list(names)}")
    try:
        ExtendRequest.checked(source=source, model=model, prompt=prompt, **params)
    except InputValidationError as exc:
        raise BadRequest(422, str(exc)) from None
    client_id = body.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not client_id.strip()):
        raise BadRequest(422, "id must be a non-empty string")
    payload = {
        "source": source,
        "model": model,
        "prompt": prompt,
        "params": {name: params.get(name) for name in names},
    }
    return payload, client_id


def arrival_event_id(payload: dict[str, Any], client_id: str | None) -> uuid.UUID:
    basis = client_id or json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return uuid.uuid5(EVENT_NAMESPACE, f"{VIDEO_ARRIVED}:{basis}")


def _authorized(request: Request, secret: str) -> bool:
    given = request.headers.get("authorization", "")
    token = given[7:] if given.lower().startswith("bearer ") else ""
    return bool(secret) and hmac.compare_digest(token.encode(), secret.encode())


def _token_ok(request: Request, token: SecretStr | None) -> bool:
    if token is None:
        return True
    given = request.query_params.get("token", "")
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


# ---------------------------------------------------------------------------------- app


def create_app(
    settings: ReceiverSettings | None = None,
    sink: EventSink | None = None,
    lookup: TaskLookup | None = None,
) -> FastAPI:
    settings = settings or ReceiverSettings()
    if settings.secret is None or len(settings.secret.get_secret_value()) < 16:
        raise ValueError("RH_EXTEND_RECEIVER_SECRET must be set (16 characters or more)")
    secret = settings.secret.get_secret_value()
    emit = sink or post_to_prefect
    look = lookup or query_task
    seen_tasks = Seen(settings.dedupe_ttl_s, settings.dedupe_max)
    seen_arrivals = Seen(settings.dedupe_ttl_s, settings.dedupe_max)
    app = FastAPI(title="rh-extend receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/runninghub/webhook")
    async def webhook(request: Request) -> JSONResponse:
        if not _token_ok(request, settings.webhook_token):
            return JSONResponse({"error": "bad or missing token"}, status_code=401)
        task_id, data = parse_webhook(await request.body())
        if not seen_tasks.start(task_id):
            return JSONResponse({"status": "duplicate", "task_id": task_id}, status_code=200)
        try:
            return await _confirm_and_emit(task_id, data)
        except BaseException:
            seen_tasks.abandon(task_id)
            raise

    async def _confirm_and_emit(task_id: str, data: dict[str, Any]) -> JSONResponse:
        from runninghub import Queued, Running, RunningHubError, Succeeded, TaskNotFoundError

        try:
            answer = await run_in_threadpool(look, task_id)
            state = answer.state
        except TaskNotFoundError:
            seen_tasks.abandon(task_id)
            return JSONResponse({"error": f"RunningHub knows no task {task_id}"}, 404)
        except RunningHubError as exc:
            seen_tasks.abandon(task_id)
            return JSONResponse({"error": f"could not confirm with RunningHub: {exc}"}, 503)
        if isinstance(state, Queued | Running):
            seen_tasks.abandon(task_id)
            return JSONResponse(
                {"status": "not_finished", "task_status": str(answer.status)}, status_code=409
            )
        status = answer.status.value if answer.status is not None else None
        payload = {
            "task_id": task_id,
            "status": status,
            "succeeded": isinstance(state, Succeeded),
            "error_code": answer.error_code,
            "error_message": answer.error_message,
            "outputs": len(state.outputs) if isinstance(state, Succeeded) else 0,
            "event_data": data,
        }
        event_id = uuid.uuid5(EVENT_NAMESPACE, f"{TASK_END}:{task_id}")
        event = make_event(
            TASK_END,
            {"prefect.resource.id": f"runninghub.task.{task_id}", "prefect.resource.name": task_id},
            payload,
            event_id,
        )
        if not await _send(event):
            seen_tasks.abandon(task_id)
            return JSONResponse({"error": "Prefect did not take the event; retry"}, 503)
        seen_tasks.done(task_id)
        return JSONResponse(
            {"status": "accepted", "event_id": str(event_id), "task_status": status},
            status_code=202,
        )

    async def _send(event: dict[str, Any]) -> bool:
        try:
            await emit([event])
        except Exception as exc:
            logger.warning("could not post event %s to Prefect: %s", event["event"], exc)
            return False
        return True

    @app.post("/videos")
    async def video_arrived(request: Request) -> JSONResponse:
        if not _authorized(request, secret):
            return JSONResponse({"error": "missing or wrong secret"}, status_code=401)
        from rh_extend.settings import load_settings

        raw = await request.body()
        payload, client_id = parse_arrival(raw, load_settings().runninghub_allow_http)
        event_id = arrival_event_id(payload, client_id)
        key = str(event_id)
        if not seen_arrivals.start(key):
            return JSONResponse({"status": "duplicate", "event_id": key}, status_code=200)
        source = payload["source"]
        resource = {
            "prefect.resource.id": VIDEO_RESOURCE_PREFIX
            + hashlib.sha256(source.encode()).hexdigest()[:16],
            "prefect.resource.name": source,
        }
        event = make_event(VIDEO_ARRIVED, resource, payload, event_id)
        if not await _send(event):
            seen_arrivals.abandon(key)
            return JSONResponse({"error": "Prefect did not take the event; retry"}, 503)
        seen_arrivals.done(key)
        return JSONResponse({"status": "accepted", "event_id": key}, status_code=202)

    return app


def run(host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    settings = ReceiverSettings()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_level="info",
        access_log=True,
    )


__all__ = [
    "TASK_END",
    "BadRequest",
    "ReceiverSettings",
    "Seen",
    "create_app",
    "parse_arrival",
    "parse_webhook",
    "run",
]
