"""The RunningHub sandbox for local use: its API key, a server on a free 127.0.0.1 port, and the
environment that points rh-extend at it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox import SandboxServer

# Only the sandbox accepts it; it is printed and shared on purpose.
LOCAL_API_KEY = "sk-sandbox-0000000000000000"


def local_sandbox(**options: Any) -> SandboxServer:
    """A sandbox (not started: use as a context manager) that accepts LOCAL_API_KEY unless
    `options` name other `api_keys`; `options` are SandboxConfig's."""
    from sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(**{"api_keys": {LOCAL_API_KEY}, **options})
    return SandboxServer(config, host="127.0.0.1", port=0)


def sandbox_env(base_url: str) -> dict[str, str]:
    """What rh-extend needs to call the sandbox at `base_url` instead of RunningHub."""
    return {
        "RUNNINGHUB_API_KEY": LOCAL_API_KEY,
        "RUNNINGHUB_BASE_URL": base_url,
        "RUNNINGHUB_ALLOW_HTTP": "1",
    }
