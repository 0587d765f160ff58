"""Credentials without blocks cost nothing, and what `rh-extend blocks create` plans to write
from an environment: no servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from rh_extend.credentials import AWS_BLOCK_SETTING, KEY_BLOCK_SETTING, planned_blocks
from rh_extend.errors import ConfigurationError

NO_BLOCKS = """
import sys
from rh_extend import cli  # what `rh-extend extend` imports
from rh_extend.flows.extend_video import check_settings
from rh_extend.settings import load_settings
from rh_extend.storage import s3_client

check_settings(load_settings())
s3_client()
assert load_settings().api_key() == "sk-env-0000"
assert "prefect_aws" not in sys.modules, "prefect-aws imported without a block named"
"""


UNREACHABLE = """
from rh_extend.errors import ConfigurationError
from rh_extend.flows.extend_video import check_settings
from rh_extend.settings import load_settings

try:
    check_settings(load_settings())
except ConfigurationError as exc:
    print(exc)
"""


def _python(code: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RH_EXTEND_", "RUNNINGHUB_"))}
    env.update(
        RUNNINGHUB_API_KEY="sk-env-0000",
        RUNNINGHUB_BASE_URL="https://www.runninghub.ai",
        RH_EXTEND_S3_BUCKET="bucket",
        # nothing listens on port 9: reading a block from this API fails
        PREFECT_API_URL="http://127.0.0.1:9/api",
        AWS_DEFAULT_REGION="us-east-1",
        **settings,
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_without_blocks_no_prefect_aws_and_no_prefect_api_call() -> None:
    done = _python(NO_BLOCKS)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("setting", [KEY_BLOCK_SETTING, AWS_BLOCK_SETTING])
def test_an_unreachable_prefect_api_is_a_configuration_error_naming_the_block(
    setting: str,
) -> None:
    done = _python(UNREACHABLE, **{setting: "creds"})
    assert done.returncode == 0, done.stderr[-3000:]
    expected = f"{setting}='creds': the Prefect API at http://127.0.0.1:9/api can't be reached"
    assert expected in done.stdout


def test_blocks_planned_from_the_environment_name_their_sources() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_ENDPOINT_URL": "http://ignored",
    }
    planned, notes = planned_blocks(env, SecretStr("sk-1"), "key-block", "aws-block")

    assert notes == []
    key, aws = planned
    assert (key.kind, key.name, key.setting, key.sources) == (
        "Secret",
        "key-block",
        KEY_BLOCK_SETTING,
        ("RUNNINGHUB_API_KEY",),
    )
    assert (aws.name, aws.setting) == ("aws-block", AWS_BLOCK_SETTING)
    assert aws.sources == (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
    )
    block = aws.build()
    assert block.aws_access_key_id == "AKIA"  # type: ignore[attr-defined]
    assert block.aws_secret_access_key.get_secret_value() == "s3cr3t"  # type: ignore[attr-defined]
    assert block.region_name == "eu-west-1"  # type: ignore[attr-defined]
    assert block.aws_client_parameters.endpoint_url == "http://127.0.0.1:9000"  # type: ignore[attr-defined]
    assert key.build().get() == "sk-1"  # type: ignore[attr-defined]


def test_nothing_in_the_environment_plans_no_block_and_says_why() -> None:
    planned, notes = planned_blocks({}, None, "key-block", "aws-block")
    assert planned == []
    assert notes[0].startswith("RUNNINGHUB_API_KEY is not set")
    assert "boto3's standard chain" in notes[1]


@pytest.mark.parametrize("bad", ["Key_Block", "key block", ""])
def test_block_names_follow_prefects_rule(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="lowercase letters, digits and dashes"):
        planned_blocks({}, SecretStr("sk-1"), bad, "aws-block")
