"""Credentials from Prefect blocks, with the environment as the fallback (as prefect-aws does).

`RH_EXTEND_RUNNINGHUB_KEY_BLOCK` names a Prefect `Secret` block that holds the RunningHub API
key; `RH_EXTEND_AWS_CREDENTIALS_BLOCK` names a prefect-aws `AwsCredentials` block for S3. When a
setting is unset, the key comes from `RUNNINGHUB_API_KEY` and S3 from boto3's standard chain.

Each block is read once per process, not once per task. Prefect's block client and prefect-aws
are imported only when a block is named, so a command without blocks starts as fast as before.
Also here: what `rh-extend blocks create` writes from the current environment.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr

from rh_extend.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3
    from prefect.blocks.core import Block

KEY_BLOCK_SETTING = "RH_EXTEND_RUNNINGHUB_KEY_BLOCK"
AWS_BLOCK_SETTING = "RH_EXTEND_AWS_CREDENTIALS_BLOCK"
DEFAULT_KEY_BLOCK = "rh-extend-runninghub-key"
DEFAULT_AWS_BLOCK = "rh-extend-aws"
_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")  # Prefect's rule for block document names

B = TypeVar("B", bound="Block")
_load_lock = threading.RLock()


def check_blocks(key_block: str | None, aws_block: str | None) -> None:
    """Read every block that is named, so that a missing one stops a run before it pays."""
    if key_block:
        runninghub_key(key_block)
    if aws_block:
        aws_credentials(aws_block)


def runninghub_key(block_name: str) -> SecretStr:
    """The API key in the Secret block BLOCK_NAME."""
    with _load_lock:  # a batch's threads start at once: one read of the API, not one each
        return _read_key(block_name)


def aws_credentials(block_name: str) -> Any:
    """The prefect-aws AwsCredentials block BLOCK_NAME."""
    with _load_lock:
        return _read_aws(block_name)


@functools.lru_cache(maxsize=4)
def _read_key(block_name: str) -> SecretStr:
    from prefect.blocks.system import Secret

    value = _load(Secret, block_name, KEY_BLOCK_SETTING).get()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{KEY_BLOCK_SETTING}={block_name!r}: that Secret block holds no API key "
            "(its value must be the key as one string)"
        )
    return SecretStr(value.strip())


@functools.lru_cache(maxsize=4)
def _read_aws(block_name: str) -> Any:
    from prefect_aws import AwsCredentials

    return _load(AwsCredentials, block_name, AWS_BLOCK_SETTING)


def aws_session(block_name: str) -> tuple[boto3.Session, dict[str, Any]]:
    """A boto3 session from the AwsCredentials block and the client options it holds
    (endpoint, region, TLS, botocore config). Empty fields fall back to boto3's chain."""
    block = aws_credentials(block_name)
    options = block.aws_client_parameters.get_params_override()
    if block.region_name:
        options["region_name"] = block.region_name
    return block.get_boto3_session(), options


def _load(block_type: type[B], name: str, setting: str) -> B:
    kind = block_type.get_block_type_name()
    try:
        return block_type.load(name, _sync=True)  # type: ignore[call-arg, return-value]
    except ValueError as exc:
        from prefect.exceptions import ObjectNotFound

        if isinstance(exc.__cause__, ObjectNotFound):
            raise ConfigurationError(
                f"{setting}={name!r}: the Prefect API at {api_url()} has no {kind} block "
                f"named {name!r}; create it (`rh-extend blocks create`) or unset {setting}"
            ) from None
        # a validation error may quote the block's values: keep only its type
        raise ConfigurationError(
            f"{setting}={name!r}: that block can't be read as a {kind} block ({type(exc).__name__})"
        ) from None
    except httpx.HTTPError as exc:  # the API is down, or PREFECT_API_URL points nowhere
        raise ConfigurationError(
            f"{setting}={name!r}: the Prefect API at {api_url()} can't be reached to read it "
            f"({type(exc).__name__}: {exc})"
        ) from None


def api_url() -> str:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or "(ephemeral: PREFECT_API_URL is not set)"


# --- `rh-extend blocks create` ----------------------------------------------------------------


@dataclass(frozen=True)
class PlannedBlock:
    """A block the command will write: its type, name, the setting that names it on workers and
    how to build it (the values are read only when it is saved)."""

    kind: str
    name: str
    setting: str
    sources: tuple[str, ...]  # the variables its values come from
    build: Callable[[], Block]


def planned_blocks(
    env: Mapping[str, str], api_key: SecretStr | None, key_block: str, aws_block: str
) -> tuple[list[PlannedBlock], list[str]]:
    """The blocks the environment has values for, and a note for each it has none for."""
    for name in (key_block, aws_block):
        if not _BLOCK_NAME.match(name):
            raise ConfigurationError(
                f"block name {name!r}: use lowercase letters, digits and dashes only"
            )
    planned, notes = [], []
    if api_key is not None and api_key.get_secret_value().strip():
        planned.append(
            PlannedBlock(
                "Secret", key_block, KEY_BLOCK_SETTING, ("RUNNINGHUB_API_KEY",), _secret(api_key)
            )
        )
    else:
        notes.append("RUNNINGHUB_API_KEY is not set: no key block written")
    aws, sources = _aws_fields(env)
    if aws:
        planned.append(
            PlannedBlock("AWS Credentials", aws_block, AWS_BLOCK_SETTING, sources, _aws(aws))
        )
    else:
        notes.append(
            "no AWS_* credentials, profile, region or endpoint in the environment: no AWS block "
            "written (workers use boto3's standard chain, e.g. an instance role)"
        )
    return planned, notes


def existing(planned: list[PlannedBlock]) -> list[PlannedBlock]:
    """Those of PLANNED that the Prefect API already has."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    found = []
    with get_client(sync_client=True) as client:
        for block in planned:
            slug = block.build().get_block_type_slug()
            try:
                client.read_block_document_by_name(name=block.name, block_type_slug=slug)
            except ObjectNotFound:
                continue
            found.append(block)
    return found


def save(planned: list[PlannedBlock], overwrite: bool) -> None:
    for block in planned:
        block.build().save(block.name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]


def _secret(api_key: SecretStr) -> Callable[[], Block]:
    def build() -> Block:
        from prefect.blocks.system import Secret

        return Secret(value=api_key.get_secret_value())

    return build


_AWS_FIELDS = {  # AwsCredentials field ← the variable boto3 reads (first one set wins)
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "profile_name": ("AWS_PROFILE",),
    "region_name": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
}


def _aws_fields(env: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    fields, sources = {}, []
    for field, names in _AWS_FIELDS.items():
        source = next((name for name in names if env.get(name)), None)
        if source:
            fields[field] = env[source]
            sources.append(source)
    return fields, tuple(sources)


def _aws(fields: dict[str, str]) -> Callable[[], Block]:
    def build() -> Block:
        from prefect_aws import AwsClientParameters, AwsCredentials

        values: dict[str, Any] = dict(fields)
        endpoint = values.pop("endpoint_url", None)
        return AwsCredentials(
            **values, aws_client_parameters=AwsClientParameters(endpoint_url=endpoint)
        )

    return build
