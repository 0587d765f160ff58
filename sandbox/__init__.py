"""A local RunningHub-compatible server for tests and demos (no network, no real models).

Speaks the wire contract in /work/shared/runninghub-api.md: upload, the three video-extend
models (Wan 2.7, SkyReels V3 single-shot and shot-switching), query, queue/account status,
price preview and cancel, plus signed, expiring, Range-capable file links and a `/_sandbox`
control API (ledger, tasks, config, fault injection).

It never imports the project's `runninghub` client or the pipeline: its tables and behaviour
are written independently so a client bug cannot be mirrored on the server side.

    from sandbox import SandboxConfig, SandboxServer
    with SandboxServer(SandboxConfig(queue_seconds=0.2, run_seconds=1.0)) as sb:
        ...  # point the client at sb.base_url with key "sk-sandbox-0001"

Response shapes chosen where the contract is silent are listed in `sandbox.wire`; fault kinds
in `sandbox.faults`; output-video semantics in `sandbox.video` and `sandbox.processing`.
"""

from .app import create_app
from .config import DEFAULT_API_KEY, SandboxConfig
from .server import SandboxServer
from .state import SandboxState
from .video import make_test_clip, probe

__all__ = [
    "DEFAULT_API_KEY",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "make_test_clip",
    "probe",
]
