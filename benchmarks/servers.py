"""The servers every comparison talks to, each in its own process, from rh_extend.local_servers.

- `Stack`: the RunningHub sandbox, run by `python -m benchmarks.servers` in a child process
  (so its threads never compete for the measured process's GIL), and moto's S3 server in a
  child of that one; steered over the sandbox's HTTP control API (`/_sandbox/...`), and with a
  log of when each client request arrived (`RequestLog`).
- `PrefectServer`: the kit's `prefect server start` (SQLite, or a throwaway PostgreSQL cluster
  with `postgres=True`) with its PREFECT_HOME under the comparison's folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rh_extend import local_servers as kit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STACK_STARTUP_TIMEOUT_S = 120.0  # the child's own waits: moto 60 s, the sandbox 20 s
STACK_EXIT_TIMEOUT_S = 20.0


def bench_env(**extra: str) -> dict[str, str]:
    """The kit's clean environment, with this checkout importable (`-m benchmarks...`)."""
    return kit.clean_env(PYTHONPATH=str(ROOT), **extra)


# ----------------------------------------------------------------------- sandbox + S3


class Stack:
    """Sandbox and moto S3, each in a process of its own. `env` is what a client needs."""

    def __init__(self, workdir: Path, publish: list[Path] | None = None, **sandbox: Any) -> None:
        self.workdir = workdir
        self.options = sandbox
        self.publish = publish or []
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Stack:
        args = [
            sys.executable,
            "-m",
            "benchmarks.servers",
            "--s3-log",
            str(self.workdir / "s3.log"),
        ]
        args += [json.dumps(self.options), *map(str, self.publish)]
        log = self.workdir / "stack.log"
        self.process = kit.start_process("stack", args, bench_env(), log, cwd=ROOT, pipes=True)
        try:
            self.info = json.loads(self._first_line())
        except BaseException:
            self.process.stop()
            raise
        self.http = httpx.Client(base_url=self.base_url, timeout=30, trust_env=False)
        return self

    def _first_line(self) -> str:
        """The child's line of JSON, read with a deadline; its log if it dies or hangs first."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=STACK_STARTUP_TIMEOUT_S):
                raise TimeoutError(
                    f"stack not up in {STACK_STARTUP_TIMEOUT_S:.0f} s:\n{self.process.tail()}"
                )
        line = self.process.stdout.readline()
        if not line:  # its stdout closed: it is on its way out
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.proc.wait(timeout=STACK_EXIT_TIMEOUT_S)
            code = self.process.proc.returncode
            raise kit.ServerDied(f"stack exited ({code}) before it was up:\n{self.process.tail()}")
        return line

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()  # the child stops its servers and exits when its stdin closes
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.proc.wait(timeout=STACK_EXIT_TIMEOUT_S)
        self.process.stop()  # if it did not
        self.process.stdout.close()
        self.http.close()

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


def _serve(options: dict[str, Any], publish: list[str], s3_log: Path) -> None:
    """Child process: start both servers, print one JSON line, run until stdin closes.

    The kit's `local_servers`, with the request log around the sandbox's app and moto in a
    process of its own (S3 is a service of its own: in the sandbox's process every S3 call would
    queue behind status calls for that process's GIL)."""
    kit.exit_on_sigterm()  # a stop by signal still stops moto, which runs in its own session
    with kit.local_servers(s3_log=s3_log, wrap_sandbox_app=RequestLog, **options) as servers:
        sandbox = servers.sandbox
        links = [
            sandbox.state.files.add(Path(p), Path(p).name, "result").url(sandbox.public_url)
            for p in publish
        ]
        info = {
            "base_url": sandbox.base_url,
            "s3_endpoint": servers.s3_endpoint,
            "bucket": servers.bucket,
            "env": servers.env,
            "published": links,
            "pid": os.getpid(),
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # EOF when the parent closes the pipe or dies


# ---------------------------------------------------------------------------- Prefect


class PrefectServer(kit.PrefectServer):
    """The kit's server with its PREFECT_HOME in `root`; clients get the benchmarks' environment."""

    def __init__(self, root: Path, *, postgres: bool = False) -> None:
        super().__init__(root / "prefect-home", postgres=postgres)

    def client_env(self, **extra: str) -> dict[str, str]:
        return super().client_env(PYTHONPATH=str(ROOT), **extra)


def temp_root(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"rh-bench-{name}-"))


def main() -> None:
    parser = argparse.ArgumentParser(description="sandbox + S3 server (benchmarks' child)")
    parser.add_argument("options", help="SandboxConfig options as JSON")
    parser.add_argument("--s3-log", type=Path, required=True, help="moto server's log")
    parser.add_argument("publish", nargs="*", help="files to serve as result links")
    args = parser.parse_args()
    _serve(json.loads(args.options), args.publish, args.s3_log)


if __name__ == "__main__":
    main()
