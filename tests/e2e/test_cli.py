"""The installed `rh-extend` command, run as a user (or a script) runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rh_extend.local_servers import LocalServers

pytestmark = pytest.mark.usefixtures("prefect_api")

RH_EXTEND = str(Path(sys.executable).with_name("rh-extend"))
JSON_KEYS = {
    "status",
    "request_key",
    "task_id",
    "model",
    "output_uri",
    "manifest_uri",
    "output_sha256",
    "output_duration_s",
    "cost",
    "error",
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RH_EXTEND, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def last_json(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def test_extend_json_line_per_model(
    clip: Path, stack: LocalServers, sandbox: Any, s3_prefix: str
) -> None:
    runs = {
        "wan-2.7": ["--duration", "4", "--resolution", "720P", "--prompt", "cli"],
        "skyreels-v3-single-shot": ["--duration", "5", "--prompt", "cli"],
        "skyreels-v3-shot-switching": [
            "--duration",
            "2",
            "--prompt",
            "cli",
            "--cut-type",
            "Multi-Angle",
        ],
    }
    for model, extra in runs.items():
        proc = run_cli("extend", str(clip), "--model", model, *extra, "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = last_json(proc.stdout)
        print(json.dumps(line))  # shown with -s: the closing note quotes these lines
        assert set(line) == JSON_KEYS
        assert line["status"] == "succeeded" and line["error"] is None
        assert line["model"] == model
        assert line["output_uri"].startswith(f"s3://{stack.bucket}/{s3_prefix}/")
        assert line["cost"] > 0
    assert len(sandbox.ledger()) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "skyreels-v3-single-shot", "--prompt", "x", "--duration", "40"], "duration"),
        (["--model", "wan-2.7", "--resolution", "4K"], "resolution"),
        (["--model", "no-such-model"], "wan-2.7"),
    ],
    ids=["duration-out-of-range", "bad-resolution", "unknown-model"],
)
def test_bad_input_exits_2_naming_the_field(
    clip: Path, sandbox: Any, args: list[str], needle: str
) -> None:
    proc = run_cli("extend", str(clip), *args, "--json")
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = last_json(proc.stdout)
    assert line["status"] == "failed"
    assert needle in line["error"]["message"]
    assert sandbox.ledger() == []


def test_missing_api_key_exits_2(clip: Path, sandbox: Any) -> None:
    proc = run_cli("extend", str(clip), "--model", "wan-2.7", env={"RUNNINGHUB_API_KEY": ""})
    assert proc.returncode == 2
    assert "RUNNINGHUB_API_KEY" in proc.stderr
    assert sandbox.ledger() == []


def test_help_teaches_the_models() -> None:
    proc = run_cli("extend", "--help", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    for model in ("wan-2.7", "skyreels-v3-single-shot", "skyreels-v3-shot-switching"):
        assert model in proc.stdout
