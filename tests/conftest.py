"""Session-wide real parts: one Prefect API (test harness), the sandbox and an S3 server.

Unit tests don't ask for these fixtures and so never start them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rh_extend.localstack import LocalStack, environment, local_stack
from rh_extend.media import make_sample_clip


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("work")
    with local_stack(queue_seconds=0.2, run_seconds=0.5) as running:
        env = {
            **running.env,
            "RH_EXTEND_WORKDIR": str(workdir),
            "RH_EXTEND_POLL_INTERVAL_S": "0.2",
            "RH_EXTEND_POLL_MAX_INTERVAL_S": "0.5",
        }
        with environment(env):
            yield running


@pytest.fixture
def sandbox(stack: LocalStack) -> object:
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
