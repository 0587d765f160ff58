"""moto's S3 server on 127.0.0.1, in a thread of this process or in a child process of its own;
the local bucket, a client of it and the environment that points rh-extend at it.

Needs the `local` extra (moto's server mode)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from rh_extend.local_servers._process import clean_env, free_port, start_process

LOCAL_BUCKET = "rh-extend-local"
LOCAL_REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60.0
THREAD_JOIN_TIMEOUT_S = 10.0


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def s3_env(endpoint: str) -> dict[str, str]:
    """What rh-extend (and boto3) need to archive into the local bucket at `endpoint`."""
    return {
        "RH_EXTEND_S3_BUCKET": LOCAL_BUCKET,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


@contextmanager
def moto_thread() -> Iterator[str]:
    """moto's S3 server in a daemon thread of this process; yields its endpoint.

    Not moto's ThreadedMotoServer: its start waits without a deadline for a thread that may have
    failed to bind. Here the socket is bound before the thread starts, so there is no wait."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=THREAD_JOIN_TIMEOUT_S)
        server.server_close()


@contextmanager
def moto_process(log: Path) -> Iterator[str]:
    """moto's S3 server in a child process (S3 is a service of its own: in a server's process
    every S3 call would queue behind that server's work for the GIL); yields its endpoint."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with start_process("moto server", args, clean_env(), log) as process:

        def up() -> bool:
            try:
                return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        process.wait_for(f"{endpoint}/moto-api/", up, STARTUP_TIMEOUT_S, every_s=0.1)
        yield endpoint
