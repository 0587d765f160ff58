"""The local servers' process kit: deadlines, fail-fast on a dead child, stops that always end.

Starts small Python children only (no servers)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from rh_extend.local_servers import (
    Process,
    ServerDied,
    clean_env,
    environment,
    start_process,
    wait_for,
)

DEADLINE_S = 20.0


def _python(tmp_path: Path, name: str, code: str) -> Process:
    return start_process(name, [sys.executable, "-c", code], clean_env(), tmp_path / f"{name}.log")


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (the reaper of orphans may be slow or absent here)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_wait_for_returns_the_probes_value_or_times_out_naming_what() -> None:
    answers = iter([None, 0, "ready"])
    assert wait_for("answers", lambda: next(answers), DEADLINE_S, every_s=0.01) == "ready"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="waiting for nothing"):
        wait_for("nothing", lambda: False, timeout_s=0.2, every_s=0.05)
    assert time.monotonic() - started < 2


def test_a_child_that_dies_fails_the_wait_at_once_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('cannot bind: address in use', flush=True); sys.exit(3)"
    started = time.monotonic()
    process = _python(tmp_path, "doomed", code)
    with pytest.raises(ServerDied, match=r"doomed exited with 3:\ncannot bind"):
        process.wait_for("never", lambda: False, timeout_s=DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S / 2


def test_a_timeout_names_the_wait_and_ends_with_the_log(tmp_path: Path) -> None:
    code = "import time; print('still migrating', flush=True); time.sleep(60)"
    with _python(tmp_path, "slow", code) as process:
        process.wait_for("its line", lambda: "migrating" in process.text(), DEADLINE_S, 0.05)
        with pytest.raises(TimeoutError, match=r"waiting for health; slow's log ends:\n.*migr"):
            process.wait_for("health", lambda: False, timeout_s=0.3, every_s=0.05)
    assert process.proc.returncode is not None


def test_stop_ends_the_child_and_what_it_started(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = _python(tmp_path, "parent", code)
    pid = int(process.wait_for("the grandchild's pid", lambda: process.text().strip(), DEADLINE_S))
    process.stop()
    assert process.proc.returncode is not None
    wait_for("the grandchild to end", lambda: _gone(pid), DEADLINE_S, every_s=0.05)


def test_a_child_that_ignores_sigterm_is_killed_after_the_deadline(tmp_path: Path) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('deaf', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = _python(tmp_path, "deaf", code)
    process.wait_for("SIGTERM ignored", lambda: "deaf" in process.text(), DEADLINE_S, 0.05)
    started = time.monotonic()
    process.stop(timeout_s=0.3)
    assert process.proc.returncode == -9
    assert time.monotonic() - started < DEADLINE_S / 2


def test_clean_env_keeps_no_setting_of_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREFECT_API_URL", "RH_EXTEND_S3_BUCKET", "RUNNINGHUB_API_KEY", "AWS_PROFILE"):
        monkeypatch.setenv(name, "from the caller's shell")
    env = clean_env(PREFECT_HOME="/tmp/home")
    assert not {k for k in env if k.startswith(("RH_EXTEND_", "RUNNINGHUB_", "AWS_"))}
    assert {k for k in env if k.startswith("PREFECT_")} == {
        "PREFECT_HOME",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
    }
    assert env["DO_NOT_TRACK"] == "1" and env["PATH"] == os.environ["PATH"]


def test_environment_puts_back_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RH_EXTEND_WORKDIR", "before")
    monkeypatch.delenv("RH_EXTEND_S3_PREFIX", raising=False)
    with environment({"RH_EXTEND_WORKDIR": "during", "RH_EXTEND_S3_PREFIX": "p"}):
        assert os.environ["RH_EXTEND_WORKDIR"] == "during"
    assert os.environ["RH_EXTEND_WORKDIR"] == "before"
    assert "RH_EXTEND_S3_PREFIX" not in os.environ
