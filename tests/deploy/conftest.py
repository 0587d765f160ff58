"""A real `prefect server start` (PostgreSQL, 127.0.0.1), the deployments served from a
subprocess, and small REST helpers to watch runs and events. One server and one serve process per
session; the processes come from `rh_extend.local_servers`.

The served runs need the sandbox and the S3 server of the session `stack`; their settings come
through the environment of the serve subprocess, with the archive under the `deploy` prefix.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from rh_extend.local_servers import (
    LocalServers,
    PrefectServer,
    Process,
    clean_env,
    free_port,
    start_process,
    wait_for,
)

BIN = Path(sys.executable).parent
SERVE_PREFIX = "deploy"
INBOX_INTERVAL_S = 5
LOGGING = {"PREFECT_LOGGING_LEVEL": "INFO"}  # the `served` fixture waits for serve's "polling"


@dataclass
class PrefectApi:
    """A few REST calls against the server (plain httpx: no Prefect client state involved)."""

    url: str
    home: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Like Prefect's own client: retry 503 ("database is locked" on SQLite) and timeouts.

        Only for reads and for writes that are safe to repeat (idempotency key)."""
        for attempt in range(6):
            try:
                response = self.client.request(method, path, json=body)
            except httpx.TimeoutException:
                if attempt == 5:
                    raise
            else:
                if response.status_code != 503 or attempt == 5:
                    return response
            time.sleep(min(8.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, body if body is not None else {})
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        response = self.request("GET", path)
        response.raise_for_status()
        return response.json()

    def deployment(self, name: str, flow: str) -> dict[str, Any]:
        return dict(self.get(f"/deployments/name/{flow}/{name}"))

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 200}
        return list(self.post("/flow_runs/filter", body))

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/flow_runs/{run_id}"))

    wait_for = staticmethod(wait_for)

    def task_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/task_runs/{run_id}"))

    def wait_final(self, run_id: str, timeout_s: float = 90) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            run = self.flow_run(run_id)
            state = run.get("state") or {}
            return run if state.get("type") in FINAL else None

        return dict(wait_for(f"flow run {run_id} to finish", final, timeout_s, every_s=0.5))

    def events(self, name: str) -> list[dict[str, Any]]:
        """The last day's events of that name (the first page: 50, newest first)."""
        body = {"filter": {"event": {"name": [name]}, "order": "DESC"}, "limit": 50}
        return list(self.post("/events/filter", body).get("events", []))

    def post_event(
        self, name: str, resource_id: str, payload: dict[str, Any], event_id: str | None = None
    ) -> str:
        event_id = event_id or str(uuid.uuid4())
        event = {
            "id": event_id,
            "occurred": datetime.now(UTC).isoformat(),
            "event": name,
            "resource": {"prefect.resource.id": resource_id},
            "payload": payload,
        }
        self.post("/events", [event])
        return event_id

    def runs_where(self, deployment_id: str, **fields: Any) -> list[dict[str, Any]]:
        """The deployment's runs whose `request` parameter has these field values."""
        return [
            run
            for run in self.flow_runs(deployment_id)
            if all(run["parameters"].get("request", {}).get(k) == v for k, v in fields.items())
        ]

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        return list(self.post("/artifacts/filter", body))

    def table(self, run_id: str, key: str) -> list[dict[str, Any]]:
        for artifact in self.artifacts(run_id):
            if artifact.get("key") == key:
                data = artifact["data"]
                return list(json.loads(data) if isinstance(data, str) else data)
        raise AssertionError(f"flow run {run_id} has no artifact {key!r}")


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectApi]:
    """`prefect server start` on 127.0.0.1 in a temp PREFECT_HOME, on a throwaway PostgreSQL
    cluster (on SQLite its task-run recorder found the database locked for 60 s at a time)."""
    home = tmp_path_factory.mktemp("prefect-home")
    server_env = {**LOGGING, "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
    with PrefectServer(home, postgres=True, env=server_env, startup_timeout_s=90) as server:
        print(f"\nprefect server healthy in {server.startup_s:.1f} s at {server.api_url}")
        api = PrefectApi(server.api_url, home)
        try:
            yield api
        finally:
            api.client.close()


@dataclass
class Served:
    api: PrefectApi
    process: Process
    env: dict[str, str]
    prefix: str
    deployments: dict[str, dict[str, Any]]
    inbox_interval_s: float = INBOX_INTERVAL_S


def run_env(stack: LocalServers, api: PrefectApi, workdir: Path) -> dict[str, str]:
    """What a process running the pipeline against these servers needs."""
    return clean_env(
        **LOGGING,
        **stack.env,
        PREFECT_API_URL=api.url,
        PREFECT_HOME=str(api.home),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        RH_EXTEND_S3_PREFIX=SERVE_PREFIX,
        RH_EXTEND_WORKDIR=str(workdir),
        RH_EXTEND_POLL_INTERVAL_S="0.2",
        RH_EXTEND_POLL_MAX_INTERVAL_S="0.5",
    )


@pytest.fixture(scope="session")
def served(
    prefect_server: PrefectApi, stack: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`python -m rh_extend.deployments.serve`: all deployments, the inbox every 5 s."""
    workdir = tmp_path_factory.mktemp("serve-work")
    env = run_env(stack, prefect_server, workdir)
    args = [
        sys.executable,
        "-m",
        "rh_extend.deployments.serve",
        "--inbox-interval",
        str(INBOX_INTERVAL_S),
        "--set",
        "extend-inbox.settle_s=0",
        "--limit",
        "8",
    ]
    with start_process("serve", args, env, workdir / "serve.log") as process:
        names = {
            "extend-video": "extend-video",
            "extend-inbox": "extend-batch",
            "extend-batch": "extend-batch",
            "collect-orphans": "collect-orphans",
        }

        def registered() -> dict[str, dict[str, Any]] | None:
            found: dict[str, dict[str, Any]] = {}
            for name, flow in names.items():
                response = prefect_server.request("GET", f"/deployments/name/{flow}/{name}")
                if response.status_code != 200:
                    return None
                found[name] = response.json()
            automations = prefect_server.post("/automations/filter", {})
            return found if automations else None

        deployments = process.wait_for("the served deployments and trigger", registered, 90, 0.5)
        # the inbox schedule ticks only while a test wants it (see `inbox_schedule`)
        for scheduled in ("extend-inbox", "collect-orphans"):  # tests call them when they want
            prefect_server.post(f"/deployments/{deployments[scheduled]['id']}/pause_deployment")
        process.wait_for("serve to poll", lambda: "polling" in process.tail(200).lower(), 60, 0.5)
        yield Served(prefect_server, process, env, SERVE_PREFIX, deployments)


@pytest.fixture
def inbox_schedule(served: Served) -> Iterator[dict[str, Any]]:
    """The served extend-inbox deployment with its schedule resumed for this test only."""
    deployment = served.deployments["extend-inbox"]
    served.api.post(f"/deployments/{deployment['id']}/resume_deployment")
    try:
        yield deployment
    finally:
        served.api.post(f"/deployments/{deployment['id']}/pause_deployment")


RECEIVER_SECRET = "test-receiver-secret-0123456789"


@dataclass
class Receiver:
    url: str
    secret: str
    process: Process


@pytest.fixture(scope="module")
def receiver(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """`rh-extend receiver` as a subprocess, posting to the session's Prefect server."""
    port = free_port()
    env = {**served.env, "RH_EXTEND_RECEIVER_SECRET": RECEIVER_SECRET}
    log = tmp_path_factory.mktemp("receiver") / "receiver.log"
    args = [str(BIN / "rh-extend"), "receiver", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with start_process("receiver", args, env, log) as process:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        process.wait_for("the receiver", up, 60)
        yield Receiver(url, RECEIVER_SECRET, process)
