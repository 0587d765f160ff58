"""Fixtures for the runninghub client tests: a mocked RunningHub, instant backoff."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from runninghub import RunningHubClient

# The project runs pytest with --import-mode=importlib, which puts no test folder on sys.path;
# the shared fakes module beside this file must still be importable by the test modules.
sys.path.insert(0, str(Path(__file__).parent))

from rh_fakes import BASE, FAST, KEY, Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client(mock: respx.MockRouter, sleeps: Sleeps) -> Iterator[RunningHubClient]:
    with RunningHubClient(KEY, BASE, retry=FAST, sleep=sleeps) as rh:
        yield rh
