"""Credentials from Prefect blocks (a real Prefect API, moto's S3): the S3 client an
AwsCredentials block gives keeps the project's options, a named block that is missing or empty
is a configuration error naming it, and a block is read once per process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.config import Config
from prefect.blocks.system import Secret
from prefect_aws import AwsClientParameters, AwsCredentials

from rh_extend.credentials import AWS_BLOCK_SETTING, KEY_BLOCK_SETTING
from rh_extend.errors import ConfigurationError
from rh_extend.flows.extend_video import check_settings
from rh_extend.local_servers import LOCAL_REGION, LocalServers
from rh_extend.settings import load_settings
from rh_extend.storage import S3_CONNECTIONS, s3_client

pytestmark = pytest.mark.usefixtures("prefect_api")

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3")


def _name(what: str) -> str:
    """A fresh block name: blocks are cached per process by name."""
    return f"rh-extend-test-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*AWS_VARIABLES, "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _aws_block(endpoint: str, config: dict[str, Any] | None = None) -> str:
    name = _name("aws")
    AwsCredentials(
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name=LOCAL_REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint, config=config),
    ).save(name)
    return name


@pytest.mark.usefixtures("no_aws_environment")
@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
def test_s3_client_from_an_aws_block_keeps_the_project_options(
    checksums: str, stack: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the block's own botocore options apply too, ours win where both set one
    block = _aws_block(stack.s3_endpoint, {"connect_timeout": 7, "max_pool_connections": 5})
    monkeypatch.setenv("RH_EXTEND_AWS_CREDENTIALS_BLOCK", block)

    s3 = s3_client(checksums)  # type: ignore[arg-type]

    config: Config = s3.meta.config
    assert s3.meta.endpoint_url == stack.s3_endpoint
    assert s3.meta.region_name == LOCAL_REGION
    assert config.max_pool_connections == S3_CONNECTIONS
    assert config.request_checksum_calculation == checksums
    assert config.response_checksum_validation == checksums
    assert config.connect_timeout == 7
    key = f"{block}/probe.txt"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=b"through the block")
    assert s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read() == b"through the block"
    assert s3_client(checksums) is s3  # type: ignore[arg-type]


def test_without_a_block_the_client_is_boto3s_standard_chain(
    stack: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RH_EXTEND_AWS_CREDENTIALS_BLOCK", raising=False)
    s3 = s3_client()
    assert s3.meta.endpoint_url == stack.s3_endpoint  # AWS_ENDPOINT_URL_S3 of the environment
    assert s3.meta.config.max_pool_connections == S3_CONNECTIONS


@pytest.mark.parametrize(
    ("setting", "kind"), [(KEY_BLOCK_SETTING, "Secret"), (AWS_BLOCK_SETTING, "AWS Credentials")]
)
def test_a_named_block_that_does_not_exist_is_a_configuration_error(
    setting: str, kind: str, stack: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = _name("missing")
    monkeypatch.setenv(setting, missing)

    with pytest.raises(ConfigurationError) as raised:
        check_settings(load_settings())

    message = str(raised.value)
    assert f"{setting}={missing!r}" in message
    assert f"has no {kind} block named {missing!r}" in message
    assert raised.value.exit_code == 2


def test_an_empty_secret_block_is_a_configuration_error(
    stack: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name("empty")
    Secret(value="  ").save(name)
    monkeypatch.setenv(KEY_BLOCK_SETTING, name)

    with pytest.raises(ConfigurationError, match="that Secret block holds no API key"):
        check_settings(load_settings())


def test_the_key_block_is_read_once_per_process(
    stack: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name("key")
    Secret(value="sk-from-a-block-1234").save(name)
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    monkeypatch.setenv(KEY_BLOCK_SETTING, name)
    assert load_settings().api_key() == "sk-from-a-block-1234"

    Secret.delete(name)  # a second read of the API would now fail

    assert load_settings().api_key() == "sk-from-a-block-1234"
    check_settings(load_settings())
