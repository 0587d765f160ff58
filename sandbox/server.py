"""Run the sandbox in a background thread (tests, demos) with a real socket and uvicorn."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Self

import httpx
import uvicorn

from .app import create_app
from .config import SandboxConfig
from .connection import DROP
from .faults import FaultRule
from .state import SandboxState


class _HideDeliberateDrops(logging.Filter):
    """uvicorn logs an error when the app makes it drop a connection; ours are deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(arg is DROP for arg in args)


_FILTER = _HideDeliberateDrops()
logging.getLogger("uvicorn.error").addFilter(_FILTER)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class SandboxServer:
    """A sandbox on `host:port` (port 0 = any free port), served by uvicorn in a daemon thread.

    `start()` returns once the server answers `/_sandbox/health` (or raises after
    `startup_timeout`); `stop()` asks uvicorn to exit and joins the thread. Use as a context
    manager. `state` is the live in-process state the HTTP control API also serves.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        startup_timeout: float = 20.0,
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.host = host
        self.requested_port = port
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.state = SandboxState(self.config)
        self.app = create_app(state=self.state)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # -- running
    @property
    def base_url(self) -> str:
        """Where this server listens, e.g. http://127.0.0.1:54321."""
        if self.port is None:
            raise RuntimeError("SandboxServer is not started")
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def public_url(self) -> str:
        """Base of the links the server hands out."""
        return self.state.link_base()

    def start(self) -> Self:
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.state.bound_url = self.base_url
        config = uvicorn.Config(
            self.app,
            http="h11",
            ws="none",
            lifespan="on",
            log_config=None,
            log_level=self.log_level,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="sandbox-uvicorn",
            daemon=True,
        )
        self._thread.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/_sandbox/health"
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("sandbox server thread exited during startup")
            if self._server is not None and self._server.started:
                try:
                    if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                        return
                except httpx.HTTPError as exc:
                    last_error = exc
            time.sleep(0.01)
        raise TimeoutError(f"sandbox did not answer {url} in time ({last_error})")

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def wait(self) -> None:
        """Block until the server thread ends (CLI use)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- in-process control (same as the /_sandbox HTTP API)
    def ledger(self) -> list[dict[str, Any]]:
        """Billed submits, as GET /_sandbox/ledger "billed"."""
        return self.state.ledger()

    @property
    def submits_received(self) -> int:
        return self.state.submits_received

    def add_fault(
        self,
        kind: str | dict[str, Any],
        route: str = "any",
        times: int | None = 1,
        match: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule (as POST /_sandbox/faults); `kind` may be a whole rule dict."""
        spec = (
            dict(kind)
            if isinstance(kind, dict)
            else {
                "kind": kind,
                "route": route,
                "times": times,
                "match": match or {},
                "params": params or {},
            }
        )
        rule: FaultRule = self.state.faults.add(spec)
        return rule.view()

    def faults(self) -> list[dict[str, Any]]:
        return self.state.faults.views()

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def reset(self) -> None:
        """Clear tasks, ledger and faults (config kept, balance restored)."""
        self.state.reset()

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Partial config update (as PATCH /_sandbox/config)."""
        return self.state.update_config(changes)

    def task(self, task_id: str) -> dict[str, Any] | None:
        """Internal view of a task (as GET /_sandbox/tasks/{id})."""
        return self.state.task_view(task_id, self.public_url)
