"""The benchmarks' floor (benchmarks/baseline_script.py) still runs against the sandbox and S3.

`make bench` is not part of `make test`; this keeps its plain script from rotting: two videos,
two at a time, through upload → submit → poll → download → S3, as a subprocess (a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rh_extend.local_servers import LocalServers

ROOT = Path(__file__).resolve().parents[2]


def test_baseline_script_extends_and_archives(
    stack: LocalServers, clip: Path, tmp_path: Path
) -> None:
    stack.sandbox.reset()
    env = {**os.environ, **stack.env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.baseline_script", str(clip), "--json",
            "--count", "2", "--concurrency", "2", "--duration", "5",
            "--poll-interval", "0.1", "--poll-max-interval", "0.2",
            "--prefix", "bench-smoke", "--workdir", str(tmp_path),
        ],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert len(result["items"]) == 2
    billed = {entry["taskId"] for entry in stack.sandbox.ledger()}
    assert {item["task_id"] for item in result["items"]} == billed
    s3 = stack.s3()
    for item in result["items"]:
        assert item["queries"] >= 1
        key = item["output_uri"].removeprefix(f"s3://{stack.bucket}/")
        head = s3.head_object(Bucket=stack.bucket, Key=key)
        assert head["ContentLength"] > 0
        assert len(head["Metadata"]["sha256"]) == 64
        manifest_key = key.rsplit("/", 1)[0] + "/manifest.json"
        manifest = json.loads(s3.get_object(Bucket=stack.bucket, Key=manifest_key)["Body"].read())
        assert manifest["task_id"] == item["task_id"]
        assert manifest["output_sha256"] == head["Metadata"]["sha256"]
