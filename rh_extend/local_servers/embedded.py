"""The embedded default: the RunningHub sandbox and an S3 server with the local bucket, on
127.0.0.1, for the demo, the tests and the benchmarks. Nothing here is used against real
RunningHub or AWS."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rh_extend.local_servers.s3 import LOCAL_BUCKET, moto_process, moto_thread, s3_client, s3_env
from rh_extend.local_servers.sandbox import local_sandbox, sandbox_env


@dataclass(frozen=True)
class LocalServers:
    """The running servers; `env` is what a process running rh-extend against them needs."""

    sandbox: Any  # sandbox.SandboxServer, not imported by rh_extend's modules at import time
    s3_endpoint: str
    bucket: str
    env: dict[str, str]

    def s3(self) -> Any:
        return s3_client(self.s3_endpoint)


def local_env(base_url: str, s3_endpoint: str) -> dict[str, str]:
    """The settings that point rh-extend at a sandbox and an S3 server with the local bucket."""
    return {**sandbox_env(base_url), **s3_env(s3_endpoint)}


@contextmanager
def local_servers(
    *,
    s3_log: Path | None = None,
    wrap_sandbox_app: Callable[[Any], Any] | None = None,
    **sandbox_options: Any,
) -> Iterator[LocalServers]:
    """Start the sandbox and moto's S3 server on free loopback ports, create the local bucket;
    stop both on exit.

    moto runs in a thread of this process, or with `s3_log` in a child process logging there.
    `wrap_sandbox_app` wraps the sandbox's ASGI app (e.g. in a request log); `sandbox_options`
    are SandboxConfig's."""
    with ExitStack() as running:
        endpoint = running.enter_context(moto_process(s3_log) if s3_log else moto_thread())
        sandbox = local_sandbox(**sandbox_options)
        if wrap_sandbox_app is not None:
            sandbox.app = wrap_sandbox_app(sandbox.app)
        running.enter_context(sandbox)
        servers = LocalServers(
            sandbox=sandbox,
            s3_endpoint=endpoint,
            bucket=LOCAL_BUCKET,
            env=local_env(sandbox.base_url, endpoint),
        )
        servers.s3().create_bucket(Bucket=LOCAL_BUCKET)
        yield servers


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block; the previous values (or their absence) after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
