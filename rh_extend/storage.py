"""The S3 archive: one folder per request key, create-only objects, sha256 in metadata.

boto3's managed transfer (`upload_file` / `download_file`) streams from and to disk, switches to
multipart for large files and aborts a failed multipart upload itself, so no partial object is
left behind. A multipart object's ETag/checksum is not the file's hash, so the full-file sha256
is stored in user metadata and re-checked after every upload.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from rh_extend.credentials import aws_session
from rh_extend.errors import ArchiveError
from rh_extend.settings import load_settings

SHA256_META = "sha256"
S3_CONNECTIONS = 64
TRANSFER = TransferConfig(multipart_threshold=64 * 1024**2, multipart_chunksize=16 * 1024**2)


@dataclass(frozen=True)
class StoredObject:
    uri: str
    key: str
    size: int
    sha256: str


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


Checksums = Literal["when_supported", "when_required"]
_client_lock = threading.Lock()


def s3_client(checksums: Checksums = "when_supported") -> Any:
    """One client per process and configuration (boto3 clients are thread-safe).

    Building a client costs ≈ 50 ms of CPU, and building them from the default session in several
    threads at once is not thread-safe; the AWS_* variables and the AwsCredentials block the
    settings name are part of the key, so a changed endpoint, credential or block gives a new
    client.
    """
    aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    block = load_settings().aws_credentials_block or None
    with _client_lock:
        return _new_client(checksums, aws, block)


@functools.lru_cache(maxsize=8)
def _new_client(
    checksums: Checksums, aws_environment: tuple[tuple[str, str], ...], block: str | None
) -> Any:
    config = Config(
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
        retries={"mode": "standard", "max_attempts": 5},
        # one client for every thread of the process: a batch's items, each with up to three
        # transfers at once; beyond the pool, botocore drops connections and opens new ones
        max_pool_connections=S3_CONNECTIONS,
    )
    if block is None:
        return boto3.client("s3", config=config)
    session, options = aws_session(block)
    block_config = options.pop("config", None)
    # the block's own botocore options first, ours (checksums, pool, retries) over them
    return session.client(
        "s3", config=block_config.merge(config) if block_config else config, **options
    )


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def _is_precondition_failed(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    return code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class Archive:
    """`s3://<bucket>/<prefix>/<request_key>/<name>` and the operations the pipeline needs."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        send_checksums: bool = True,
        transfer: TransferConfig = TRANSFER,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = client or s3_client()
        self.send_checksums = send_checksums
        self.transfer = transfer

    def key(self, request_key: str, name: str) -> str:
        return "/".join(p for p in (self.prefix, request_key, name) if p)

    def uri(self, request_key: str, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(request_key, name)}"

    def head(self, request_key: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.s3.head_object(Bucket=self.bucket, Key=self.key(request_key, name)))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def read_json(self, request_key: str, name: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(request_key, name))["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        with body:
            return dict(json.loads(body.read()))

    def put_json(
        self, request_key: str, name: str, data: dict[str, Any], *, create_only: bool = False
    ) -> bool:
        """Write a small JSON document; with create_only, False when it already exists."""
        extra = {"IfNoneMatch": "*"} if create_only else {}
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key(request_key, name),
                Body=json.dumps(data, indent=2, sort_keys=True, default=str).encode(),
                ContentType="application/json",
                **extra,
            )
        except ClientError as exc:
            if create_only and _is_precondition_failed(exc):
                return False
            raise
        return True

    def delete(self, request_key: str, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.key(request_key, name))

    def names_by_request(self) -> dict[str, set[str]]:
        """Every request folder under the prefix and the names in it (one paged listing)."""
        found: dict[str, set[str]] = {}
        root = f"{self.prefix}/" if self.prefix else ""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root)
        for page in pages:
            for item in page.get("Contents", []):
                request_key, slash, name = item["Key"][len(root) :].partition("/")
                if slash and name and "/" not in name:
                    found.setdefault(request_key, set()).add(name)
        return found

    def store_file(
        self, request_key: str, name: str, path: Path, *, sha256: str, content_type: str
    ) -> StoredObject:
        """Upload once: an object holding the same bytes is kept, a different one refused.

        Files below the multipart threshold go up in one create-only PUT carrying their SHA-256
        (the store verifies it where it supports flexible checksums): when it is accepted the
        object is ours, byte for byte, and nothing is read back. Only a refused PUT (the object
        was there already) reads the existing object's sha256 metadata to compare. Larger files
        use boto3's managed multipart upload after a head check, since s3transfer can't send
        IfNoneMatch, and their sha256 metadata is read back afterwards.
        """
        key = self.key(request_key, name)
        size = path.stat().st_size
        if size < self.transfer.multipart_threshold:
            if self._put_create_only(key, path, sha256, content_type):
                return StoredObject(
                    uri=f"s3://{self.bucket}/{key}", key=key, size=size, sha256=sha256
                )
            existing = self.head(request_key, name)
        else:
            existing = self.head(request_key, name)
            if existing is None:
                self.s3.upload_file(
                    str(path),
                    self.bucket,
                    key,
                    ExtraArgs={"Metadata": {SHA256_META: sha256}, "ContentType": content_type},
                    Config=self.transfer,
                )
                existing = self.head(request_key, name)
        stored = _stored_sha256(existing)
        if stored != sha256:
            raise ArchiveError(
                f"s3://{self.bucket}/{key} holds sha256 {stored}, expected {sha256}: "
                "refusing to overwrite an archived object"
            )
        size = int((existing or {}).get("ContentLength", 0))
        return StoredObject(uri=f"s3://{self.bucket}/{key}", key=key, size=size, sha256=sha256)

    def _put_create_only(self, key: str, path: Path, sha256: str, content_type: str) -> bool:
        """True when this PUT created the object; False when one was there already."""
        extra = {}
        if self.send_checksums:
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode()
        with path.open("rb") as body:
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    Metadata={SHA256_META: sha256},
                    ContentType=content_type,
                    IfNoneMatch="*",
                    **extra,
                )
            except ClientError as exc:
                if not _is_precondition_failed(exc):
                    raise
                return False  # an object that appeared meanwhile is compared by the caller
        return True

    def presign(self, request_key: str, name: str, ttl_s: int) -> str:
        return str(
            self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.key(request_key, name)},
                ExpiresIn=ttl_s,
            )
        )


def _stored_sha256(head: dict[str, Any] | None) -> str | None:
    if head is None:
        return None
    return dict(head.get("Metadata", {})).get(SHA256_META)


def download_s3_uri(s3: Any, uri: str, dest: Path) -> Path:
    bucket, key = parse_s3_uri(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(dest), Config=TRANSFER)
    return dest


def presign_s3_uri(s3: Any, uri: str, ttl_s: int) -> str:
    bucket, key = parse_s3_uri(uri)
    return str(
        s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s
        )
    )
