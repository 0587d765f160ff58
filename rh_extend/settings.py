"""All configuration in one place: environment variables and an optional `.env` file.

RunningHub settings keep RunningHub's own names (`RUNNINGHUB_*`); the pipeline's settings use the
`RH_EXTEND_` prefix, because Prefect silently ignores unknown `PREFECT_*` variables and we don't
want a typo to vanish. S3 credentials and endpoint are boto3's standard `AWS_*` variables
(`AWS_ENDPOINT_URL_S3` for an S3-compatible store), read by boto3 itself.

Credentials may instead live in Prefect blocks (`rh_extend.credentials`): a setting names the
block, and the environment is the fallback when none is named.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workdir() -> Path:
    return Path.home() / ".cache" / "rh-extend"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_prefix="RH_EXTEND_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,  # shared between tasks and threads: see load_settings
    )

    runninghub_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RUNNINGHUB_API_KEY")
    )
    runninghub_base_url: str = Field(
        default="https://www.runninghub.ai", validation_alias=AliasChoices("RUNNINGHUB_BASE_URL")
    )
    runninghub_allow_http: bool = Field(
        default=False, validation_alias=AliasChoices("RUNNINGHUB_ALLOW_HTTP")
    )
    # Prefect blocks that hold the credentials; unset: RUNNINGHUB_API_KEY and boto3's chain
    runninghub_key_block: str | None = None  # a Secret block
    aws_credentials_block: str | None = None  # a prefect-aws AwsCredentials block

    s3_bucket: str | None = None
    s3_prefix: str = "rh-extend"
    s3_checksums: Literal["when_supported", "when_required"] = "when_supported"
    presign_ttl_s: int = 3600

    upload_via: Literal["runninghub", "s3"] = "runninghub"
    max_cost: float | None = None
    concurrency_limit: int | None = None  # None: the key's own concurrentLimit from RunningHub
    concurrency_wait_s: float = 3600.0
    cancel_on_timeout: bool = True
    retry_attempts: int = 5
    retry_initial_s: float = 1.0
    poll_interval_s: float = 5.0
    poll_max_interval_s: float = 30.0
    poll_timeout_s: float = 1800.0
    http_timeout_s: float = 60.0
    max_output_bytes: int = 4 * 1024**3
    workdir: Path = Field(default_factory=_default_workdir)
    # a failed run's copies wait this long for a resume; far longer than any run (see workdir)
    workdir_retention_h: float = Field(default=24.0, gt=0)

    def api_key(self) -> str:
        """The key as plain text, for the client only; never log or return it.

        From the Secret block RH_EXTEND_RUNNINGHUB_KEY_BLOCK names (read once per process),
        else from RUNNINGHUB_API_KEY."""
        if self.runninghub_key_block:
            from rh_extend.credentials import runninghub_key

            return runninghub_key(self.runninghub_key_block).get_secret_value()
        return self.runninghub_api_key.get_secret_value() if self.runninghub_api_key else ""


ENV_PREFIXES = ("RUNNINGHUB_", "RH_EXTEND_")


def _env_fingerprint() -> tuple[object, ...]:
    ours = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)))
    try:
        stat = Path(".env").resolve().stat()
        dotenv: object = (str(Path(".env").resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        dotenv = None
    return ours, dotenv


@functools.lru_cache(maxsize=8)
def _parse(fingerprint: tuple[object, ...]) -> Settings:
    return Settings()


def load_settings() -> Settings:
    """Parsed once per distinct environment and .env file, not once per call.

    Every task loads its settings itself (so the key never becomes a task input); parsing them
    each time cost ≈ 35 ms of CPU per video. A changed variable or .env gives a fresh parse.
    """
    return _parse(_env_fingerprint())
