"""Run one extension against a real `prefect server start` and photograph its artifacts.

    .venv/bin/python scripts/screenshot_run.py [--out-dir docs/img]

Starts, each on a free loopback port and with throwaway state (`rh_extend.local_servers`): a
Prefect server (its own PREFECT_HOME), the RunningHub sandbox and moto's S3 server. Runs
`extend_video` (Wan 2.7) through that server, then opens in headless Chromium, while the S3
server still serves the contact sheet:

- the run's markdown artifact  → <out-dir>/run-artifact.png
- the flow run's page        → <out-dir>/run-page.png (tags, task graph with the artifacts, logs)
- the `extend-video` deployment's run form → <out-dir>/run-form.png (the typed request's
  dropdowns and ranges)

and stops everything it started. Needs Debian's `chromium`
(`apt-get install -y --no-install-recommends chromium`). Exit code 0 when every PNG was written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

# Imports no Prefect: this process's Prefect settings are set below, before anything does.
from rh_extend.local_servers import (
    PrefectServer,
    ServerDied,
    environment,
    exit_on_sigterm,
    local_servers,
)

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


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit(
        "chromium not found: apt-get install -y --no-install-recommends chromium "
        "(or put chromium / google-chrome on PATH)"
    )


def run_extension(workdir: Path) -> tuple[Any, str, str]:
    """(the ExtendResult, the markdown artifact's id, the run's artifacts) — inside the stack."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from rh_extend.flows.extend_video import extend_video
    from rh_extend.media import make_sample_clip
    from rh_extend.observe import artifact_key
    from rh_extend.request import ExtendRequest

    clip = make_sample_clip(workdir / "clip.mp4", seconds=3.0)
    request = ExtendRequest(
        source=str(clip), model="wan-2.7", prompt=PROMPT, duration=6, resolution="720P"
    )
    result = extend_video(request)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(result.flow_run_id)]))
        )
    report = next(a for a in found if a.key == artifact_key(str(result.request_key)))
    return result, str(report.id), str(result.flow_run_id)


# Shown filled in on the run form's picture (this throwaway server's deployment only).
FORM_EXAMPLE = {
    "source": "s3://my-archive/inbox/clip.mp4",
    "model": "wan-2.7",
    "prompt": PROMPT,
    "duration": 8,
    "resolution": "720P",
}


def register_extend_video() -> str:
    """The `extend-video` deployment as `rh-extend serve` registers it (no runs are served),
    with an example request as its default, so the form's picture shows its fields in use."""
    from rh_extend.deployments.definitions import by_name
    from rh_extend.deployments.serve import runner_deployment

    deployment = runner_deployment(by_name("extend-video"), parameters={"request": FORM_EXAMPLE})
    return str(deployment.apply())


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


def photograph(tmp: Path, chromium: str, out_dir: Path, size: str) -> None:
    """One run through a `prefect server start` with its UI, then its two pages photographed."""
    with PrefectServer(tmp / "prefect", ui=True, startup_timeout_s=120) as server:
        print(f"prefect server {server.api_url} healthy after {server.startup_s:.1f} s")
        # This process is the server's client: set before anything imports prefect.
        os.environ["PREFECT_API_URL"] = server.api_url
        os.environ["PREFECT_HOME"] = str(tmp / "client")
        with local_servers(queue_seconds=1.0, run_seconds=2.0) as stack:
            env = {
                **stack.env,
                "RH_EXTEND_WORKDIR": str(tmp / "work"),
                "RH_EXTEND_POLL_INTERVAL_S": "0.5",
                "RH_EXTEND_POLL_MAX_INTERVAL_S": "1",
            }
            with environment(env):
                result, artifact_id, run_id = run_extension(tmp)
            print(f"run {run_id}: {result.output_uri}")
            deployment_id = register_extend_video()
            shots = [
                (f"{server.url}/artifacts/artifact/{artifact_id}", "run-artifact.png", size),
                (f"{server.url}/runs/flow-run/{run_id}", "run-page.png", "1440,900"),
                (f"{server.url}/deployments/deployment/{deployment_id}/run", "run-form.png",
                 "1440,1500"),
            ]  # fmt: skip
            for url, name, window in shots:
                dest = out_dir / name
                screenshot(chromium, url, dest, window, tmp / "chrome")
                print(f"{dest} ← {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--size", default="1440,1700", help="artifact page window WIDTH,HEIGHT")
    args = parser.parse_args()
    chromium = find_chromium()
    exit_on_sigterm()  # a stop by signal still stops the servers
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rh-extend-screenshot-") as tmp:
        try:
            photograph(Path(tmp), chromium, args.out_dir, args.size)
        except (TimeoutError, ServerDied) as exc:
            sys.exit(f"screenshot: {exc}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
