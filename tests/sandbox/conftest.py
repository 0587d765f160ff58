"""Fixtures for the sandbox tests: one real server on 127.0.0.1 (random port) per session,
reset to known settings before every test, and small PyAV-made clips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxConfig, SandboxServer, make_test_clip
from sandbox.testkit import BASE_SETTINGS, KEY


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    cfg = SandboxConfig(api_keys={KEY, "sk-sandbox-0002"}, **BASE_SETTINGS)
    with SandboxServer(cfg, host="127.0.0.1", port=0) as sb:
        yield sb


@pytest.fixture
def sb(server: SandboxServer) -> SandboxServer:
    """The session server with tasks, ledger, faults and settings back to the baseline."""
    server.update_config(api_keys=[KEY, "sk-sandbox-0002"], **BASE_SETTINGS)
    server.reset()
    return server


@pytest.fixture
def client(sb: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sb.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ) as c:
        yield c


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2 s, 160x120, 12 fps test clips: H.264 MP4, MOV, MP4 with audio, and a text file."""
    root = tmp_path_factory.mktemp("clips")
    junk = root / "not-a-video.mp4"
    junk.write_text("hello, this is not a video\n" * 50)
    return {
        "mp4": make_test_clip(root / "clip.mp4"),
        "mov": make_test_clip(root / "clip.mov", container="mov"),
        "audio": make_test_clip(root / "clip-audio.mp4", with_audio=True),
        "junk": junk,
    }
