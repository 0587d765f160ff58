"""The local servers clean up after a failed start: a real PostgreSQL cluster, a real
`prefect server start` that dies, moto in a process of its own (a few seconds)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rh_extend.local_servers import (
    PrefectServer,
    ServerDied,
    moto_process,
    s3_client,
    throwaway_postgres,
)


def _clusters(port: int) -> list[Path]:
    return list(Path("/tmp").glob(f"rh-extend-pg-prefect-{port}-*"))


def test_a_prefect_server_that_dies_fails_fast_and_removes_its_cluster(tmp_path: Path) -> None:
    server = PrefectServer(tmp_path / "home", postgres=True, env={"PREFECT_LOGGING_LEVEL": "NOPE"})
    started = time.monotonic()
    with pytest.raises(ServerDied, match=r"(?s)prefect server exited with \d+:\n.*NOPE"), server:
        pytest.fail("a server with an invalid setting came up")
    assert time.monotonic() - started < 60, "waited on a dead server"
    assert server.database_url.startswith("postgresql+asyncpg://")  # the cluster was up
    assert _clusters(server.port) == []


def test_a_throwaway_cluster_is_deleted_when_its_block_raises() -> None:
    name = f"raising-{os.getpid()}"  # /tmp is shared with whoever else runs this test
    with pytest.raises(RuntimeError, match="the block failed"), throwaway_postgres(name):
        (root,) = Path("/tmp").glob(f"rh-extend-pg-{name}-*")
        assert (root / "pg" / "postmaster.pid").exists()
        raise RuntimeError("the block failed")
    assert not root.exists()


def test_moto_in_a_process_serves_s3_until_the_block_ends(tmp_path: Path) -> None:
    with moto_process(tmp_path / "moto.log") as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="kit-bucket")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["kit-bucket"]
    with pytest.raises(Exception, match="Could not connect"):
        s3_client(endpoint).list_buckets()
