"""`rh-extend blocks create`, run as an operator runs it: the blocks it writes hold the
environment's credentials, its output names them and the settings to export but never a secret,
it replaces nothing without --overwrite, and a worker with only those settings can run."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect_aws import AwsCredentials

from rh_extend.local_servers import LOCAL_API_KEY, LOCAL_REGION, LocalServers

pytestmark = pytest.mark.usefixtures("prefect_api")

RH_EXTEND = str(Path(sys.executable).with_name("rh-extend"))
AWS_SECRET = "aws-secret-Qx7Zt0-never-printed"  # moto takes any credentials
NEW_KEY = "sk-rotated-1111111111"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RH_EXTEND, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def _without_credentials(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "RUNNINGHUB_API_KEY" and not k.startswith("AWS_")}


@pytest.fixture
def block_names() -> Iterator[tuple[str, str]]:
    """Fresh names for the key and the AWS block; the blocks are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    key_block, aws_block = f"test-key-{suffix}", f"test-aws-{suffix}"
    yield key_block, aws_block
    for block_type, name in ((Secret, key_block), (AwsCredentials, aws_block)):
        with contextlib.suppress(ValueError):  # not written
            block_type.delete(name)


def test_blocks_create_writes_the_environment_and_a_worker_runs_from_the_blocks(
    clip: Path,
    stack: LocalServers,
    sandbox: object,
    s3_prefix: str,
    block_names: tuple[str, str],
) -> None:
    key_block, aws_block = block_names
    names = ("--key-block", key_block, "--aws-block", aws_block)
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "COLUMNS": "200"}

    created = _cli("blocks", "create", *names, env=env)

    assert created.returncode == 0, created.stderr[-3000:]
    shown = created.stdout + created.stderr
    for secret in (LOCAL_API_KEY, AWS_SECRET):
        assert secret not in shown
    assert f"wrote Secret block '{key_block}' (from RUNNINGHUB_API_KEY)" in shown
    assert f"wrote AWS Credentials block '{aws_block}' (from AWS_ACCESS_KEY_ID" in shown
    exports = (
        f"RH_EXTEND_RUNNINGHUB_KEY_BLOCK={key_block} RH_EXTEND_AWS_CREDENTIALS_BLOCK={aws_block}"
    )
    assert exports in created.stdout
    assert Secret.load(key_block).get() == LOCAL_API_KEY
    aws = AwsCredentials.load(aws_block)
    assert aws.aws_secret_access_key is not None
    assert aws.aws_secret_access_key.get_secret_value() == AWS_SECRET
    assert aws.region_name == LOCAL_REGION
    assert aws.aws_client_parameters.endpoint_url == stack.s3_endpoint

    rotated = {**env, "RUNNINGHUB_API_KEY": NEW_KEY}
    refused = _cli("blocks", "create", *names, env=rotated)
    assert refused.returncode == 2
    assert "already exist" in refused.stderr and "--overwrite" in refused.stderr
    assert Secret.load(key_block).get() == LOCAL_API_KEY  # nothing replaced

    # a worker: no RunningHub key and no AWS_* variable, only the settings printed above
    worker = _without_credentials(env)
    worker.update(line.split("=", 1) for line in exports.split())
    ran = _cli("extend", str(clip), "--model", "wan-2.7", "--duration", "4", "--json", env=worker)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["output_uri"].startswith(f"s3://{stack.bucket}/{s3_prefix}/")

    replaced = _cli("blocks", "create", *names, "--overwrite", env=rotated)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert NEW_KEY not in replaced.stdout + replaced.stderr
    assert Secret.load(key_block).get() == NEW_KEY


def test_blocks_create_with_nothing_to_write_exits_2(prefect_api: str) -> None:
    env = {**_without_credentials(dict(os.environ)), "RUNNINGHUB_API_KEY": ""}
    done = _cli("blocks", "create", "--key-block", "unused", "--aws-block", "unused-too", env=env)
    assert done.returncode == 2
    assert "RUNNINGHUB_API_KEY is not set: no key block written" in done.stderr
    assert "nothing to write" in done.stderr
