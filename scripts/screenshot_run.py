"""Run one extension against a real `prefect server start` and photograph its artifacts.

    .venv/bin/python scripts/screenshot_run.py [--out-dir docs/img]

Starts, each on a free loopback port and with throwaway state: a Prefect server (its own
PREFECT_HOME), the RunningHub sandbox and moto's S3 server. Runs `extend_video` (Wan 2.7) through
that server, then opens in headless Chromium, while the S3 server still serves the contact sheet:

- the run's markdown artifact  → <out-dir>/run-artifact.png
- the flow run's page        → <out-dir>/run-page.png (tags, task graph with the artifacts, logs)

and stops everything it started. Needs Debian's `chromium`
(`apt-get install -y --no-install-recommends chromium`). Exit code 0 when both PNGs were written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--virtual-time-budget=40000",
    "--run-all-compositor-stages-before-draw",
    "--hide-scrollbars",
]
PROMPT = "The camera keeps drifting right as the pattern scrolls on"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit(
        "chromium not found: apt-get install -y --no-install-recommends chromium "
        "(or put chromium / google-chrome on PATH)"
    )


def start_prefect_server(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"prefect server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"prefect server not healthy within {timeout_s:.0f} s")


def run_extension(workdir: Path) -> tuple[Any, str, str]:
    """(the ExtendResult, the markdown artifact's id, the run's artifacts) — inside the stack."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from rh_extend.flows.extend_video import extend_video
    from rh_extend.media import make_sample_clip
    from rh_extend.observe import artifact_key

    clip = make_sample_clip(workdir / "clip.mp4", seconds=3.0)
    result = extend_video(
        source=str(clip), model="wan-2.7", prompt=PROMPT, duration=6, resolution="720P"
    )
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(result.flow_run_id)]))
        )
    report = next(a for a in found if a.key == artifact_key(str(result.request_key)))
    return result, str(report.id), str(result.flow_run_id)


def screenshot(chromium: str, url: str, dest: Path, size: str, profile: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    command = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--screenshot={dest}",
        f"--window-size={size}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    if not dest.is_file() or dest.stat().st_size < 10_000:
        sys.exit(f"chromium wrote no usable screenshot of {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--size", default="1440,1700", help="artifact page window WIDTH,HEIGHT")
    args = parser.parse_args()
    chromium = find_chromium()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rh-extend-screenshot-") as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        server = start_prefect_server(tmp_path / "prefect", port, tmp_path / "server.log")
        try:
            wait_healthy(api, server)
            print(f"prefect server {api} healthy after {time.monotonic() - started:.1f} s")
            # This process is the server's client: set before anything imports prefect.
            os.environ["PREFECT_API_URL"] = api
            os.environ["PREFECT_HOME"] = str(tmp_path / "client")
            from rh_extend.localstack import environment, local_stack

            with local_stack(queue_seconds=1.0, run_seconds=2.0) as stack:
                env = {
                    **stack.env,
                    "RH_EXTEND_WORKDIR": str(tmp_path / "work"),
                    "RH_EXTEND_POLL_INTERVAL_S": "0.5",
                    "RH_EXTEND_POLL_MAX_INTERVAL_S": "1",
                }
                with environment(env):
                    result, artifact_id, run_id = run_extension(tmp_path)
                print(f"run {run_id}: {result.output_uri}")
                ui = f"http://127.0.0.1:{port}"
                shots = [
                    (f"{ui}/artifacts/artifact/{artifact_id}", "run-artifact.png", args.size),
                    (f"{ui}/runs/flow-run/{run_id}", "run-page.png", "1440,900"),
                ]
                for url, name, size in shots:
                    dest = args.out_dir / name
                    screenshot(chromium, url, dest, size, tmp_path / "chrome")
                    print(f"{dest} ← {url}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
