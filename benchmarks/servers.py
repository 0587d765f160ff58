"""The servers every comparison talks to, each in its own process.

- `Stack`: the RunningHub sandbox, run by `python -m benchmarks.servers` in a child process
  (so its threads never compete for the measured process's GIL), and moto's S3 server in a
  child of that one; steered over the sandbox's HTTP control API (`/_sandbox/...`).
- `PrefectServer`: a real `prefect server start` on 127.0.0.1 (SQLite, or a throwaway
  PostgreSQL cluster with `postgres=True`), with its own PREFECT_HOME.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* / RH_EXTEND_* / RUNNINGHUB_* setting."""
    drop = ("PREFECT_", "RH_EXTEND_", "RUNNINGHUB_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(QUIET)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM the process group we started (start_new_session=True), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ----------------------------------------------------------------------- sandbox + S3


class Stack:
    """Sandbox and moto S3, each in a process of its own. `env` is what a client needs."""

    def __init__(self, workdir: Path, publish: list[Path] | None = None, **sandbox: Any) -> None:
        self.workdir = workdir
        self.options = sandbox
        self.publish = publish or []
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Stack:
        args = [sys.executable, "-m", "benchmarks.servers", json.dumps(self.options)]
        args += [str(p) for p in self.publish]
        self.log = (self.workdir / "stack.log").open("w")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=clean_env(),
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stack did not start: {(self.workdir / 'stack.log').read_text()}")
        self.info = json.loads(line)
        self.http = httpx.Client(base_url=self.base_url, timeout=30, trust_env=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # the child exits when its stdin closes
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
        self.http.close()
        self.log.close()

    @property
    def base_url(self) -> str:
        return str(self.info["base_url"])

    @property
    def env(self) -> dict[str, str]:
        return dict(self.info["env"])

    @property
    def published(self) -> list[str]:
        return list(self.info["published"])

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"/_sandbox/{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self.control("POST", "reset")

    def configure(self, **changes: Any) -> None:
        self.control("PATCH", "config", changes)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return dict(self.control("POST", "faults", rule))

    def faults(self) -> list[dict[str, Any]]:
        answer = self.control("GET", "faults")
        return list(answer["faults"] if isinstance(answer, dict) else answer)

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.control("GET", f"tasks/{task_id}"))

    def tasks(self) -> list[dict[str, Any]]:
        answer = self.control("GET", "tasks")
        return list(answer["tasks"] if isinstance(answer, dict) else answer)

    def ledger(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "ledger")["billed"])

    def requests(self) -> list[tuple[float, str, str, str | None]]:
        """(arrival wall time, method, path, taskId of a status call) of every client request
        since the last clear."""
        answer = self.http.get("/_bench/requests").json()
        return [(float(t), str(m), str(p), i) for t, m, p, i in answer["requests"]]

    def clear_requests(self) -> None:
        self.http.get("/_bench/requests/clear")


class RequestLog:
    """ASGI wrapper: records (wall time, method, path, taskId) of every client request as it
    arrives (taskId: of a status call),
    and answers GET /_bench/requests with them (the sandbox's own API has no arrival times)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[float, str, str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/_bench/requests":
                body = json.dumps({"requests": self.seen}).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if path == "/_bench/requests/clear":
                self.seen.clear()
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            if path == "/openapi/v2/query":  # note which task each status call asks about
                messages, body, more = [], b"", True
                while more:
                    message = await receive()
                    messages.append(message)
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                try:
                    task_id = str(json.loads(body).get("taskId"))
                except (ValueError, AttributeError):
                    task_id = None
                self.seen.append((time.time(), scope["method"], path, task_id))
                upstream = receive

                async def replay() -> Any:
                    return messages.pop(0) if messages else await upstream()

                receive = replay
            elif not path.startswith("/_sandbox"):
                self.seen.append((time.time(), scope["method"], path, None))
        await self.app(scope, receive, send)


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in a process of its own, as S3 is a service of its own: in the sandbox's
    process every S3 call would queue behind status calls for that process's GIL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # werkzeug logs a line per request
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for("moto server", up, 60)
    return proc, endpoint


def _serve(options: dict[str, Any], publish: list[str]) -> None:
    """Child process: start both servers, print one JSON line, run until stdin closes.

    As `rh_extend.localstack.local_stack`, plus the request log around the sandbox's app, and
    with moto in a process of its own (a child of this one, in the same process group)."""
    from rh_extend.localstack import LOCAL_API_KEY, LOCAL_BUCKET, LocalStack, _env
    from sandbox import SandboxConfig, SandboxServer

    moto, endpoint = _start_moto()
    try:
        sandbox = SandboxServer(SandboxConfig(**{"api_keys": {LOCAL_API_KEY}, **options}))
        sandbox.app = RequestLog(sandbox.app)  # type: ignore[assignment]  # any ASGI app
        with sandbox:
            env = _env(sandbox.base_url, endpoint)
            LocalStack(sandbox, endpoint, LOCAL_BUCKET, env).s3().create_bucket(Bucket=LOCAL_BUCKET)
            links = [
                sandbox.state.files.add(Path(p), Path(p).name, "result").url(sandbox.public_url)
                for p in publish
            ]
            info = {
                "base_url": sandbox.base_url,
                "s3_endpoint": endpoint,
                "bucket": LOCAL_BUCKET,
                "env": env,
                "published": links,
                "pid": os.getpid(),
            }
            print(json.dumps(info), flush=True)
            sys.stdin.read()  # EOF when the parent closes the pipe or dies
    finally:
        moto.terminate()
        moto.wait(timeout=10)


# ---------------------------------------------------------------------------- Prefect


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install -y postgresql")
    return found


class Postgres:
    """A throwaway cluster on 127.0.0.1 (as the `postgres` user when run as root)."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.port = free_port()
        self.log = root / "pg.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            root.chmod(0o755)

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> str:
        self.data.mkdir()
        if self.as_user:
            shutil.chown(self.data, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "prefect", "--auth=trust")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c max_connections=200"
            " -c fsync=off -c synchronous_commit=off"
        )
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )
        self._run(
            pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "prefect", "prefect"
        )
        return f"postgresql+asyncpg://prefect@127.0.0.1:{self.port}/prefect"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def throwaway_postgres(name: str) -> Iterator[str]:
    """A cluster in a fresh folder under /tmp (which the `postgres` user can reach, unlike
    pytest's private tmp folders); its Prefect database URL; stopped and deleted at the end."""
    root = temp_root(name)
    database = Postgres(root)
    try:
        yield database.start()
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


class PrefectServer:
    """`prefect server start` on a free loopback port; `api_url` once /api/health answers."""

    def __init__(self, root: Path, *, postgres: bool = False) -> None:
        self.root = root
        self.home = root / "prefect-home"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.pg = Postgres(root) if postgres else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def client_env(self, **extra: str) -> dict[str, str]:
        return clean_env(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.home), **extra)

    def __enter__(self) -> PrefectServer:
        started = time.monotonic()
        env = clean_env(PREFECT_HOME=str(self.home), PREFECT_UI_ENABLED="false")
        if self.pg is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.pg.start()
        self.log = (self.root / "prefect-server.log").open("wb")
        args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*args, "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            start_new_session=True,
        )

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                text = (self.root / "prefect-server.log").read_text(errors="replace")
                raise RuntimeError(f"prefect server exited:\n{text[-3000:]}")
            try:
                return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("prefect server", healthy, 180, 0.25)
        self.startup_s = time.monotonic() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.log.close()
        if self.pg is not None:
            self.pg.stop()


def temp_root(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"rh-bench-{name}-"))


def main() -> None:
    parser = argparse.ArgumentParser(description="sandbox + S3 server (benchmarks' child)")
    parser.add_argument("options", help="SandboxConfig options as JSON")
    parser.add_argument("publish", nargs="*", help="files to serve as result links")
    args = parser.parse_args()
    _serve(json.loads(args.options), args.publish)


if __name__ == "__main__":
    main()
