"""Session-wide real parts: one Prefect API (test harness), the sandbox and an S3 server.

Unit tests don't ask for these fixtures and so never start them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from rh_extend.local_servers import (
    LocalServers,
    environment,
    free_port,
    local_servers,
    throwaway_postgres,
)
from rh_extend.media import make_sample_clip


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """Prefect's test harness (its API server in a subprocess), on PostgreSQL, not SQLite.

    On the harness's SQLite, concurrent runs now and then found the database locked for up to
    60 s (the server's busy timeout): tests then took minutes, or failed with Prefect's 503 once
    its client's retries ran out. PostgreSQL is also what production runs on.
    """
    import prefect.context
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    with ExitStack() as stack:
        url = stack.enter_context(throwaway_postgres("tests-prefect"))
        stack.enter_context(temporary_database_interface())
        stack.enter_context(temporary_settings({PREFECT_SERVER_DATABASE_CONNECTION_URL: url}))
        server = SubprocessASGIServer(port=free_port())
        stack.callback(server.stop)  # also after a start that timed out
        server.start(timeout=120)
        stack.enter_context(temporary_settings({PREFECT_API_URL: server.api_url}))
        # as prefect_test_harness: contexts copied before now (slot keepers) see this API too
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        yield server.api_url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServers]:
    workdir = tmp_path_factory.mktemp("work")
    with local_servers(queue_seconds=0.2, run_seconds=0.5) as running:
        env = {
            **running.env,
            "RH_EXTEND_WORKDIR": str(workdir),
            "RH_EXTEND_POLL_INTERVAL_S": "0.2",
            "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.5",
        }
        with environment(env):
            yield running


@pytest.fixture
def sandbox(stack: LocalServers) -> object:
    """The sandbox with an empty ledger and no faults, for one test."""
    stack.sandbox.reset()
    return stack.sandbox


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh archive folder per test, so request keys of other tests can't collide."""
    prefix = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    monkeypatch.setenv("RH_EXTEND_S3_PREFIX", prefix)
    return prefix


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 320×240, 24 fps H.264 MP4."""
    return make_sample_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=3.0)
