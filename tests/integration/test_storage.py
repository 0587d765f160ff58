"""The archive against a real S3 server (moto's, over HTTP): create-only, checksums, multipart."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from rh_extend.errors import ArchiveError
from rh_extend.local_servers import LocalServers
from rh_extend.storage import Archive

MiB = 1024 * 1024


def _file(path: Path, size: int, seed: bytes) -> tuple[Path, str]:
    block = hashlib.sha256(seed).digest() * (MiB // 32)
    with path.open("wb") as fh:
        for _ in range(size // MiB):
            fh.write(block)
        fh.write(os.urandom(size % MiB))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def archive(stack: LocalServers, s3_prefix: str) -> Archive:
    small_parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    return Archive(stack.bucket, s3_prefix, client=stack.s3(), transfer=small_parts)


@pytest.mark.parametrize("size", [200_000, 11 * MiB + 7], ids=["single-put", "multipart"])
def test_store_is_idempotent_and_records_the_full_file_sha256(
    archive: Archive, tmp_path: Path, size: int
) -> None:
    path, digest = _file(tmp_path / "v.mp4", size, b"a")

    first = archive.store_file("k1", "output.mp4", path, sha256=digest, content_type="video/mp4")
    again = archive.store_file("k1", "output.mp4", path, sha256=digest, content_type="video/mp4")

    assert first == again
    assert first.size == size
    head = archive.head("k1", "output.mp4")
    assert head is not None and head["Metadata"]["sha256"] == digest
    body = archive.s3.get_object(Bucket=archive.bucket, Key=first.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_store_refuses_to_overwrite_different_bytes(archive: Archive, tmp_path: Path) -> None:
    one, one_sha = _file(tmp_path / "one.mp4", 100_000, b"one")
    two, two_sha = _file(tmp_path / "two.mp4", 100_000, b"two")
    archive.store_file("k2", "output.mp4", one, sha256=one_sha, content_type="video/mp4")

    with pytest.raises(ArchiveError, match="refusing to overwrite"):
        archive.store_file("k2", "output.mp4", two, sha256=two_sha, content_type="video/mp4")
    body = archive.s3.get_object(Bucket=archive.bucket, Key=archive.key("k2", "output.mp4"))
    assert hashlib.sha256(body["Body"].read()).hexdigest() == one_sha


def test_json_create_only_loses_the_race_cleanly(archive: Archive) -> None:
    assert archive.put_json("k3", "submission.json", {"who": "first"}, create_only=True)
    assert not archive.put_json("k3", "submission.json", {"who": "second"}, create_only=True)
    assert archive.read_json("k3", "submission.json") == {"who": "first"}


def test_without_checksums_for_stores_that_reject_them(
    stack: LocalServers, s3_prefix: str, tmp_path: Path
) -> None:
    plain = Archive(stack.bucket, s3_prefix, client=stack.s3(), send_checksums=False)
    path, digest = _file(tmp_path / "v.mp4", 50_000, b"c")
    stored = plain.store_file("k4", "output.mp4", path, sha256=digest, content_type="video/mp4")
    assert stored.sha256 == digest
