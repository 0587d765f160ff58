"""Session-wide real parts: one Prefect API (`prefect server start` on PostgreSQL), the sandbox
and an S3 server.

Unit tests don't ask for these fixtures and so never start them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rh_extend.local_servers import LocalServers, PrefectServer, environment, local_servers
from rh_extend.media import make_sample_clip

# The tests' Prefect API is set in the environment before Prefect is imported, so that every
# settings context points at it: the ones the tests enter, and the process-wide one that threads
# without a copied context use (report writers, slot keepers). Public settings only, no harness
# internals; the server itself starts with the first test that needs it.
assert "prefect" not in sys.modules, "tests/conftest.py must run before anything imports Prefect"
_HOME = Path(tempfile.mkdtemp(prefix="rh-extend-tests-"))
_PREFECT = PrefectServer(_HOME / "server", postgres=True)
os.environ["PREFECT_API_URL"] = _PREFECT.api_url
os.environ["PREFECT_HOME"] = str(_HOME / "client")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """`prefect server start` on a throwaway PostgreSQL cluster, for the whole session.

    On SQLite, concurrent runs now and then found the database locked for up to 60 s (the
    server's busy timeout): tests then took minutes, or failed with Prefect's 503 once its
    client's retries ran out. PostgreSQL is also what production runs on.
    """
    from prefect.logging.handlers import APILogHandler

    from rh_extend.foreground import settle

    with _PREFECT:
        yield _PREFECT.api_url
        settle()  # the last report writes sent and idle slots given back while it still answers
        APILogHandler().flush()  # and the last run logs


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
