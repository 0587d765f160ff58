"""P3 — a 1 GiB result through download + archive vs `curl -o` + boto3 `upload_file`.

The sandbox serves a 1 GiB file of random bytes as a result link (a 1 GiB *video* would take
minutes to encode; the bytes travel the same path). rh-extend side, in a fresh process: the
byte path of its download and archive tasks — `RunningHubClient.download` (streamed to disk,
sha256 while streaming, Range resume) then `Archive.store_file` (head check, boto3 managed
multipart upload with sha256 metadata, read-back). Left out: the download task's decode check
(`verify_decodes_to_end`, which needs a real video). Floor, in a fresh process: `curl -o`, then
boto3's `upload_file` with its defaults. Peak RSS = `ru_maxrss` of the measuring process (and of
curl, reported apart). Throughput = bytes / (download + upload) seconds.

    python -m benchmarks.p3_large pipeline URL DEST   # child: prints one JSON line
    python -m benchmarks.p3_large floor URL DEST
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Series, disk_free_gib, log, run_json
from benchmarks.servers import Stack

MIB = 1024 * 1024


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def child_pipeline(url: str, dest: Path) -> dict[str, Any]:
    # What rh_extend.tasks.common builds for the download and archive tasks, without importing
    # the tasks package (and so Prefect): the RSS measured is the byte path's own.
    from rh_extend.settings import load_settings
    from rh_extend.storage import Archive, s3_client
    from runninghub import RetryPolicy, RunningHubClient

    settings = load_settings()
    assert settings.s3_bucket
    client = RunningHubClient(
        settings.api_key(),
        settings.runninghub_base_url,
        allow_http=settings.runninghub_allow_http,
        timeout=settings.http_timeout_s,
        retry=RetryPolicy(attempts=settings.retry_attempts, initial=settings.retry_initial_s),
    )
    store = Archive(settings.s3_bucket, settings.s3_prefix, client=s3_client())
    baseline_rss = _rss_mb()
    started = time.monotonic()
    with client:
        fetched = client.download(url, dest, max_bytes=settings.max_output_bytes)
    downloaded = time.monotonic()
    stored = store.store_file(
        uuid.uuid4().hex,
        "output.mp4",
        fetched.path,
        sha256=fetched.sha256,
        content_type="video/mp4",
    )
    finished = time.monotonic()
    store.s3.delete_object(Bucket=store.bucket, Key=stored.key)  # keep the S3 server's memory flat
    dest.unlink()
    return {
        "bytes": fetched.size,
        "download_s": downloaded - started,
        "upload_s": finished - downloaded,
        "total_s": finished - started,
        "rss_mb": _rss_mb(),
        "rss_before_mb": baseline_rss,
    }


def child_floor(url: str, dest: Path) -> dict[str, Any]:
    import boto3

    s3 = boto3.client("s3")
    baseline_rss = _rss_mb()
    started = time.monotonic()
    subprocess.run(["curl", "-sSf", "-o", str(dest), url], check=True)
    downloaded = time.monotonic()
    bucket, key = os.environ["RH_EXTEND_S3_BUCKET"], f"floor/{uuid.uuid4().hex}"
    s3.upload_file(str(dest), bucket, key)
    finished = time.monotonic()
    s3.delete_object(Bucket=bucket, Key=key)
    size = dest.stat().st_size
    dest.unlink()
    return {
        "bytes": size,
        "download_s": downloaded - started,
        "upload_s": finished - downloaded,
        "total_s": finished - started,
        "rss_mb": _rss_mb(),
        "rss_before_mb": baseline_rss,
        "curl_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
    }


def make_file(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        block = os.urandom(16 * MIB)
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            fh.write(piece)
            written += len(piece)
    return path


def measure(root: Path, runs: int, quick: bool) -> dict[str, Any]:
    size = (128 if quick else 1024) * MIB
    free = disk_free_gib(root)
    if free < 3 * size / 1024**3 + 0.5:
        raise RuntimeError(
            f"P3 needs about {3 * size / 1024**3:.1f} GiB free in {root}: {free:.1f}"
        )
    source = make_file(root / "result.bin", size)
    pipe_rss, floor_rss, curl_rss, pipe_base = Series(), Series(), Series(), Series()
    pipe_tp, floor_tp = Series(), Series()
    pipe_dl, pipe_ul, floor_dl, floor_ul = Series(), Series(), Series(), Series()
    with Stack(root, publish=[source]) as st:
        url = st.published[0]
        env = {**st.env}
        from benchmarks.servers import bench_env

        env = bench_env(**st.env, RH_EXTEND_WORKDIR=str(root / "work"))
        for attempt in range(runs):
            for side in ("floor", "pipeline"):
                dest = root / f"{side}.out"
                out = run_json(
                    ["-m", "benchmarks.p3_large", side, url, str(dest)], env, root / "p3.log"
                )
                mib_s = out["bytes"] / MIB / out["total_s"]
                if side == "pipeline":
                    pipe_rss.add(out["rss_mb"])
                    pipe_base.add(out["rss_before_mb"])
                    pipe_tp.add(mib_s)
                    pipe_dl.add(out["download_s"])
                    pipe_ul.add(out["upload_s"])
                else:
                    floor_rss.add(out["rss_mb"])
                    curl_rss.add(out["curl_rss_mb"])
                    floor_tp.add(mib_s)
                    floor_dl.add(out["download_s"])
                    floor_ul.add(out["upload_s"])
                if out["bytes"] != size:
                    raise RuntimeError(f"P3 {side}: {out['bytes']} bytes, expected {size}")
            log(
                f"P3 run {attempt + 1}/{runs}: rh-extend {pipe_tp.values[-1]:.0f} MiB/s "
                f"{pipe_rss.values[-1]:.0f} MB; floor {floor_tp.values[-1]:.0f} MiB/s"
            )
    source.unlink()
    ratio = pipe_tp.median / floor_tp.median
    label = f"{size // MIB} MiB"
    return {
        "id": "P3",
        "title": f"a {label} result through download + archive",
        "rows": [
            ("rh-extend peak RSS", pipe_rss.text("MB", 0)),
            ("rh-extend RSS before the transfer (imports, clients)", pipe_base.text("MB", 0)),
            (
                "floor peak RSS: python+boto3 / curl",
                f"{floor_rss.text('MB', 0)} / {curl_rss.text('MB', 0)}",
            ),
            ("rh-extend throughput", pipe_tp.text("MiB/s", 0)),
            ("floor throughput", floor_tp.text("MiB/s", 0)),
            ("throughput rh-extend / floor", f"{ratio:.3f}"),
            ("rh-extend download / archive", f"{pipe_dl.text()} / {pipe_ul.text()}"),
            ("floor curl / upload_file", f"{floor_dl.text()} / {floor_ul.text()}"),
        ],
        "checks": [
            ("peak RSS ≤ 150 MB (worst run)", pipe_rss.high, 150.0, pipe_rss.high <= 150.0),
            ("throughput ≥ 0.8 × floor", ratio, 0.8, ratio >= 0.8),
        ],
        "failures": [],
        "raw": {
            "pipe_rss": pipe_rss.values,
            "pipe_tp": pipe_tp.values,
            "floor_tp": floor_tp.values,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    side, url, dest = args[0], args[1], Path(args[2])
    result = child_pipeline(url, dest) if side == "pipeline" else child_floor(url, dest)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
