"""The process's RunningHub client and S3 archive, built from settings.

Tasks, the slot keepers, the receiver and the CLI build these themselves rather than receiving
them as parameters, so the API key never becomes a task input that Prefect could record.
"""

from __future__ import annotations

from rh_extend.errors import ConfigurationError
from rh_extend.settings import Settings
from rh_extend.storage import Archive, s3_client
from runninghub import RetryPolicy, RunningHubClient


def runninghub_client(settings: Settings) -> RunningHubClient:
    return RunningHubClient(
        settings.api_key(),
        settings.runninghub_base_url,
        allow_http=settings.runninghub_allow_http,
        timeout=settings.http_timeout_s,
        retry=RetryPolicy(
            attempts=settings.retry_attempts,
            initial=settings.retry_initial_s,
            jitter=settings.retry_initial_s,
        ),
    )


def archive(settings: Settings) -> Archive:
    if not settings.s3_bucket:
        raise ConfigurationError(
            "RH_EXTEND_S3_BUCKET is not set: name the bucket that archives results"
        )
    return Archive(
        settings.s3_bucket,
        settings.s3_prefix,
        client=s3_client(settings.s3_checksums),
        send_checksums=settings.s3_checksums == "when_supported",
    )
