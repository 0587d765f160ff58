"""`prefect server start` on a free 127.0.0.1 port with a PREFECT_HOME of its own, on SQLite or on
a throwaway PostgreSQL cluster; stopped (and the cluster deleted) on exit, exceptions included."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import httpx

from rh_extend.local_servers._process import Process, clean_env, free_port, start_process
from rh_extend.local_servers.postgres import throwaway_postgres

STARTUP_TIMEOUT_S = 180.0


class PrefectServer:
    """Use as a context manager: on enter the server answers `/api/health` (or the enter raises,
    with the server's log, having stopped what it started).

    `ui` serves the web UI too; `env` adds to the server's clean environment."""

    def __init__(
        self,
        home: Path,
        *,
        postgres: bool = False,
        ui: bool = False,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.home = home
        self.postgres = postgres
        self.ui = ui
        self.extra_env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.log = home / "server.log"
        self.database_url = "sqlite (in PREFECT_HOME)"
        self.startup_s = 0.0
        self._running = ExitStack()

    def client_env(self, **extra: str) -> dict[str, str]:
        """A clean environment whose Prefect client talks to this server, plus `extra`."""
        return clean_env(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.home), **extra)

    def __enter__(self) -> PrefectServer:
        try:
            self._start()
        except BaseException:
            self._running.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.close()

    def _start(self) -> None:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            PREFECT_HOME=str(self.home),
            PREFECT_UI_ENABLED=str(self.ui).lower(),
            **({"PREFECT_UI_API_URL": self.api_url} if self.ui else {}),
            **self.extra_env,
        )
        if self.postgres:
            name = f"prefect-{self.port}"
            self.database_url = self._running.enter_context(throwaway_postgres(name))
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        self.process = self._running.enter_context(self._launch(env))
        self.process.wait_for(f"{self.api_url}/health", self._healthy, self.startup_timeout_s)
        self.startup_s = time.monotonic() - started

    def _launch(self, env: dict[str, str]) -> Process:
        prefect = Path(sys.executable).with_name("prefect")
        args = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        return start_process("prefect server", args, env, self.log, cwd=self.home)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
