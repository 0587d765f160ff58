"""The floor: the same calls as rh-extend, as a plain asyncio + httpx + boto3 script.

Per video: upload → submit → poll (same interval schedule as the client: ×1.5 up to a cap) →
stream the result to disk with its sha256 → put output, input and a small manifest into S3.
No Prefect, no request keys, no submission record, no price preview, no decode check, no
retries: what a careful one-off script would do, and nothing more. Like rh-extend, at most
`--parallel` videos are in flight and at most `--concurrency` of them hold a RunningHub task
(submit to the end of polling), so uploads and archiving overlap other videos' generation.

    python -m benchmarks.baseline_script CLIP [--count N] [--concurrency C] [--parallel P] [--json]

Configuration from the same environment as rh-extend: RUNNINGHUB_BASE_URL, RUNNINGHUB_API_KEY,
RH_EXTEND_S3_BUCKET, AWS_ENDPOINT_URL_S3 and AWS credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx

UPLOAD = "/openapi/v2/media/upload/binary"
QUERY = "/openapi/v2/query"
PATHS = {
    "wan-2.7": "/openapi/v2/alibaba/wan-2.7/video-extend",
    "skyreels-v3-single-shot": "/openapi/v2/skyreels-v3/single-shot-video-extension",
    "skyreels-v3-shot-switching": "/openapi/v2/skyreels-v3/shot-switching-video-extension",
}
CHUNK = 1024 * 1024
MULTIPART_THRESHOLD = 64 * 1024**2


class Failed(Exception):
    pass


def _check(answer: dict[str, Any], what: str) -> dict[str, Any]:
    code = answer.get("code", answer.get("errorCode"))
    if code not in (0, "0", None, ""):
        raise Failed(f"{what}: {answer}")
    return answer


async def upload(http: httpx.AsyncClient, path: Path) -> str:
    with path.open("rb") as fh:
        response = await http.post(UPLOAD, files={"file": (path.name, fh, "video/mp4")})
    response.raise_for_status()
    return str(_check(response.json(), "upload")["data"]["download_url"])


async def submit(http: httpx.AsyncClient, model: str, body: dict[str, Any]) -> str:
    response = await http.post(PATHS[model], json=body)
    response.raise_for_status()
    answer = response.json()
    if answer.get("errorCode") or not answer.get("taskId"):
        raise Failed(f"submit: {answer}")
    return str(answer["taskId"])


async def poll(
    http: httpx.AsyncClient, task_id: str, interval: float, max_interval: float, timeout: float
) -> tuple[dict[str, Any], int]:
    """Until SUCCESS (returned with the number of queries) or FAILED/CANCEL (raised)."""
    deadline = time.monotonic() + timeout
    delay, calls = interval, 0
    while True:
        looked_at = time.monotonic()
        response = await http.post(QUERY, json={"taskId": task_id})
        calls += 1
        response.raise_for_status()
        answer = response.json()
        status = answer.get("status")
        if status == "SUCCESS":
            return answer, calls
        if status in ("FAILED", "CANCEL"):
            raise Failed(f"task {task_id} {status}: {answer.get('errorMessage')}")
        if time.monotonic() + delay > deadline:
            raise Failed(f"task {task_id} still {status} after {timeout} s")
        await asyncio.sleep(max(0.0, looked_at + delay - time.monotonic()))  # start to start
        delay = min(delay * 1.5, max_interval)


async def download(http: httpx.AsyncClient, url: str, dest: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        with dest.open("wb") as fh:
            async for chunk in response.aiter_bytes(CHUNK):
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def put_file(s3: Any, bucket: str, key: str, path: Path, sha256: str) -> None:
    extra = {"Metadata": {"sha256": sha256}, "ContentType": "video/mp4"}
    if path.stat().st_size < MULTIPART_THRESHOLD:
        with path.open("rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    else:
        s3.upload_file(str(path), bucket, key, ExtraArgs=extra)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


async def extend_one(
    http: httpx.AsyncClient,
    s3: Any,
    clip: Path,
    index: int,
    opts: argparse.Namespace,
    slots: asyncio.Semaphore,
) -> dict[str, Any]:
    started = time.monotonic()
    folder = f"{opts.prefix}/{uuid.uuid4().hex}"
    input_sha = await asyncio.to_thread(sha256_file, clip)
    video_url = await upload(http, clip)
    body: dict[str, Any] = {"videoUrl": video_url, "duration": str(opts.duration)}
    if opts.model == "wan-2.7":
        body["resolution"] = opts.resolution
    if opts.prompt:
        body["prompt"] = opts.prompt
    async with slots:
        task_id = await submit(http, opts.model, body)
        answer, queries = await poll(
            http, task_id, opts.poll_interval, opts.poll_max_interval, opts.poll_timeout
        )
    seen_success = time.time()
    dest = Path(opts.workdir) / f"{task_id}.mp4"
    size, output_sha = await download(http, answer["results"][0]["url"], dest)
    bucket = os.environ["RH_EXTEND_S3_BUCKET"]
    await asyncio.to_thread(put_file, s3, bucket, f"{folder}/output.mp4", dest, output_sha)
    await asyncio.to_thread(put_file, s3, bucket, f"{folder}/input.mp4", clip, input_sha)
    manifest = {"task_id": task_id, "request": body, "output_sha256": output_sha, "size": size}
    await asyncio.to_thread(
        s3.put_object,
        Bucket=bucket,
        Key=f"{folder}/manifest.json",
        Body=json.dumps(manifest).encode(),
        ContentType="application/json",
    )
    dest.unlink()
    return {
        "index": index,
        "task_id": task_id,
        "seconds": time.monotonic() - started,
        "queries": queries,
        "success_seen_at": seen_success,
        "output_uri": f"s3://{bucket}/{folder}/output.mp4",
    }


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    base = os.environ["RUNNINGHUB_BASE_URL"]
    key = os.environ["RUNNINGHUB_API_KEY"]
    s3 = boto3.client("s3")  # thread-safe; endpoint and credentials from the environment
    Path(opts.workdir).mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(opts.parallel or opts.concurrency)
    slots = asyncio.Semaphore(opts.concurrency)
    limits = httpx.Limits(max_connections=(opts.parallel or opts.concurrency) * 2)
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
        trust_env=False,
    ) as http:

        async def gated(index: int) -> dict[str, Any]:
            async with gate:
                return await extend_one(http, s3, Path(opts.clip), index, opts, slots)

        started, started_at = time.monotonic(), time.time()
        items = await asyncio.gather(*(gated(i) for i in range(opts.count)))
        wall = time.monotonic() - started
    return {"wall_s": wall, "started_at": started_at, "ended_at": started_at + wall, "items": items}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", help="local video file to extend")
    parser.add_argument("--count", type=int, default=1, help="videos (the same clip each time)")
    parser.add_argument("--concurrency", type=int, default=1, help="RunningHub tasks at once")
    parser.add_argument("--parallel", type=int, default=0, help="videos in flight (0: concurrency)")
    parser.add_argument("--model", default="wan-2.7", choices=sorted(PATHS))
    parser.add_argument("--duration", type=int, default=2)
    parser.add_argument("--resolution", default="1080P")
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--poll-max-interval", type=float, default=30.0)
    parser.add_argument("--poll-timeout", type=float, default=1800.0)
    parser.add_argument("--prefix", default="baseline")
    parser.add_argument("--workdir", default="/tmp/rh-bench-baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    result = asyncio.run(run(opts))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["max_rss_mb"] = usage.ru_maxrss / 1024
    if opts.json:
        print(json.dumps(result))
    else:
        print(f"{opts.count} video(s) in {result['wall_s']:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
