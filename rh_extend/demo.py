"""`rh-extend demo`: the main job end to end on the embedded default, as a new user sees it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console

from rh_extend.display import RunContext, summary
from rh_extend.errors import exit_code_for
from rh_extend.foreground import run_extension
from rh_extend.local_servers import environment, local_servers
from rh_extend.media import make_sample_clip, probe
from rh_extend.request import ExtendRequest, ModelId
from rh_extend.storage import parse_s3_uri

DEMO_MODEL: ModelId = "skyreels-v3-single-shot"
DEMO_PROMPT = "The camera keeps drifting right as the pattern scrolls on"


def _where_to_see(flow_run_id: str | None) -> str:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if PREFECT_API_URL.value():
        return f"{PREFECT_UI_URL.value()}/runs/flow-run/{flow_run_id}"
    home = os.environ.get("PREFECT_HOME", "~/.prefect")
    return (
        f"flow run {flow_run_id}; to browse it: PREFECT_HOME={home} .venv/bin/prefect server "
        f"start, then open http://127.0.0.1:4200/runs/flow-run/{flow_run_id}"
    )


def run_demo(workdir: Path, out: Console, err: Console) -> int:
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    clip = make_sample_clip(workdir / "sample.mp4", seconds=3.0)
    out.print(f"[bold]1.[/] sample clip {clip} ({probe(clip).duration_s:.1f} s)")
    with local_servers(queue_seconds=1.0, run_seconds=3.0) as servers:
        out.print(
            f"[bold]2.[/] RunningHub sandbox {servers.sandbox.base_url} · "
            f"S3 server {servers.s3_endpoint} · bucket {servers.bucket}"
        )
        settings_env = {
            **servers.env,
            "RH_EXTEND_WORKDIR": str(workdir / "work"),
            "RH_EXTEND_POLL_INTERVAL_S": "1",
        }
        with environment(settings_env):
            out.print(f"[bold]3.[/] extending with {DEMO_MODEL} through Prefect …")
            try:
                request = ExtendRequest(
                    source=str(clip), model=DEMO_MODEL, prompt=DEMO_PROMPT, duration=5
                )
                result = run_extension(request, RunContext(), display=err)
            except Exception as exc:
                err.print(f"[bold red]demo failed[/] {exc}")
                return exit_code_for(exc)
            local_copy = workdir / "extended.mp4"
            servers.s3().download_file(*parse_s3_uri(str(result.output_uri)), str(local_copy))
            out.print(
                "[bold]4.[/] result (the download link lives as long as the demo's S3 server)"
            )
            summary(out, result)
            extra = [
                ("local copy", f"{local_copy} ({probe(local_copy).duration_s:.1f} s)"),
                ("Prefect", _where_to_see(result.flow_run_id)),
                ("ledger", f"{len(servers.sandbox.ledger())} billed submit(s) in the sandbox"),
            ]
            for label, value in extra:
                out.print(f"  [bold]{label:<12}[/] {value}", soft_wrap=True, highlight=False)
    out.print(f"done in {time.monotonic() - started:.1f} s")
    return 0
