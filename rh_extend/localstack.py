"""The embedded default: the RunningHub sandbox and an S3 server on 127.0.0.1 (demo, tests).

Needs the `local` extra (moto's server mode). Nothing here is used against real RunningHub or AWS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

LOCAL_API_KEY = "sk-sandbox-0000000000000000"
LOCAL_BUCKET = "rh-extend-local"
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class LocalStack:
    sandbox: Any
    s3_endpoint: str
    bucket: str
    env: dict[str, str]

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=LOCAL_REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@contextmanager
def local_stack(**sandbox_options: Any) -> Iterator[LocalStack]:
    """Start the sandbox and moto's S3 server on free loopback ports; stop both on exit."""
    from moto.server import ThreadedMotoServer

    from sandbox import SandboxConfig, SandboxServer

    options = {"api_keys": {LOCAL_API_KEY}, **sandbox_options}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with SandboxServer(SandboxConfig(**options), host="127.0.0.1", port=0) as sandbox:
            stack = LocalStack(
                sandbox=sandbox,
                s3_endpoint=endpoint,
                bucket=LOCAL_BUCKET,
                env=_env(sandbox.base_url, endpoint),
            )
            stack.s3().create_bucket(Bucket=LOCAL_BUCKET)
            yield stack
    finally:
        moto.stop()


def _env(base_url: str, s3_endpoint: str) -> dict[str, str]:
    return {
        "RUNNINGHUB_API_KEY": LOCAL_API_KEY,
        "RUNNINGHUB_BASE_URL": base_url,
        "RUNNINGHUB_ALLOW_HTTP": "1",
        "RH_EXTEND_S3_BUCKET": LOCAL_BUCKET,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
