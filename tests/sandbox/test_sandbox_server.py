"""SandboxServer start/stop and the `python -m sandbox` entry point."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxConfig, SandboxServer, create_app


def test_start_stop_without_context_manager() -> None:
    sb = SandboxServer(SandboxConfig(), port=0)
    with pytest.raises(RuntimeError):
        _ = sb.base_url
    sb.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.base_url)
        assert httpx.get(sb.base_url + "/_sandbox/health").json()["ok"] is True
        assert sb.public_url == sb.base_url
    finally:
        sb.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{sb.port}/_sandbox/health", timeout=2)


def test_public_url_setting_and_data_dir(tmp_path: Path) -> None:
    cfg = SandboxConfig(public_url="http://sandbox.internal:8000", data_dir=tmp_path)
    with SandboxServer(cfg) as sb:
        assert sb.public_url == "http://sandbox.internal:8000"
    assert (tmp_path / "uploads").is_dir()  # a given data dir is kept


def test_create_app_is_a_fastapi_app() -> None:
    from fastapi import FastAPI

    assert isinstance(create_app(SandboxConfig()), FastAPI)


def test_cli_serves_and_stops_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--public-url",
            "http://links.example:1234",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server answers
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        health = httpx.get(match.group(1) + "/_sandbox/health").json()
        assert health["base_url"] == "http://links.example:1234"
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_restart_after_stop(tmp_path: Path) -> None:
    sb = SandboxServer(SandboxConfig(queue_seconds=0.01, run_seconds=0.01))
    with sb:
        pass
    with sb:  # a stopped server can start again (its temp folders are recreated)
        resp = httpx.post(
            sb.base_url + "/openapi/v2/media/upload/binary",
            files={"file": ("a.mp4", b"bytes", "video/mp4")},
            headers={"Authorization": "Bearer sk-sandbox-0001"},
        )
        assert resp.json()["code"] == 0
