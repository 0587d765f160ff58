"""The `rh-extend` command (typer + rich).

Exit codes: 0 success; 1 remote failure or unexpected error; 2 invalid input or configuration,
found before any paid call.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rh_extend.credentials import DEFAULT_AWS_BLOCK, DEFAULT_KEY_BLOCK
from rh_extend.display import RunContext, summary
from rh_extend.errors import ConfigurationError, exit_code_for
from rh_extend.foreground import prevalidate, run_extension, settle
from rh_extend.result import ErrorInfo, ExtendResult
from rh_extend.settings import load_settings
from runninghub import CATALOG, RunningHubError

app = typer.Typer(
    help="Extend videos with RunningHub's video-extend models; Prefect runs it, S3 keeps it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)

MODEL_HELP = "Model id: " + " | ".join(CATALOG)


@app.command()
def extend(
    source: Annotated[str, typer.Argument(help="Local path, https:// URL or s3://bucket/key.")],
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)],
    prompt: Annotated[str | None, typer.Option(help="What should happen next.")] = None,
    duration: Annotated[
        int | None,
        typer.Option(
            help="Seconds. Wan 2.7: total output length 2-15; SkyReels: seconds added "
            "(single-shot 5-30, shot-switching 2-5)."
        ),
    ] = None,
    resolution: Annotated[str | None, typer.Option(help="Wan 2.7 only: 720P or 1080P.")] = None,
    cut_type: Annotated[
        str | None,
        typer.Option(
            "--cut-type",
            help="Shot-switching only: Auto, Cut-In, Cut-Out, 'Shot/Reverse Shot', "
            "Multi-Angle, 'Cut Away'.",
        ),
    ] = None,
    negative_prompt: Annotated[
        str | None, typer.Option("--negative-prompt", help="Wan 2.7 only: what to avoid.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Wan 2.7 only: 0-2147483647. A new seed is a new (paid) take."),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            help="Refuse to submit when RunningHub's price preview is higher (account currency). "
            "Default: RH_EXTEND_MAX_COST, else no limit.",
        ),
    ] = None,
    take: Annotated[
        str | None,
        typer.Option(
            help="Label for a deliberate new attempt at the same request: a new take is a new "
            "request key, so it is submitted (and paid) again. Reruns with the same label resume."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="A new take with a fresh random label: always submits (and pays) again. "
            "Prefer --take LABEL, which a rerun after a crash can resume."
        ),
    ] = False,
    resubmit: Annotated[
        bool,
        typer.Option(
            help="Submit again although this request was submitted before, e.g. after a lost "
            "answer or a failed task (pays again: check RunningHub's call record first)."
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object as the last stdout line, for scripts."),
    ] = False,
) -> None:
    """Extend SOURCE with MODEL, archive it in S3 and print where it is.

    The same video with the same parameters is submitted (and paid) once: a rerun returns the
    archive, or resumes the earlier task.
    """
    context = RunContext()
    try:
        request = prevalidate(
            source=source,
            model=model,
            prompt=prompt,
            duration=duration,
            resolution=resolution,
            cut_type=cut_type,
            negative_prompt=negative_prompt,
            seed=seed,
            take=f"force-{uuid.uuid4().hex[:12]}" if force else take,
            max_cost=max_cost,
        )
        result = run_extension(
            request, context, resubmit=resubmit, display=None if as_json else err
        )
    except Exception as exc:  # every failure ends as one clear message and an exit code
        _fail(exc, model, context, as_json)
    if as_json:
        print(json.dumps(result.json_line()))
    else:
        summary(out, result)


def _fail(exc: BaseException, model: str, context: RunContext, as_json: bool) -> None:
    code = exit_code_for(exc)
    info = ErrorInfo.from_exception(exc)
    if as_json:
        failed = ExtendResult(
            status="failed",
            model=model,
            request_key=context.request_key,
            task_id=context.task_id,
            error=info,
        )
        print(json.dumps(failed.json_line()))
    else:
        err.print(f"[bold red]error[/] [{info.code}] {info.message}")
        if code == 2:
            err.print("Nothing was submitted or paid. Fix the value above and run again.")
    raise typer.Exit(code)


@app.command()
def models() -> None:
    """List the models, their endpoints and every parameter's allowed values."""
    for spec in CATALOG.values():
        table = Table(title=f"{spec.id} — {spec.title}", title_justify="left")
        table.add_column("parameter")
        table.add_column("type")
        table.add_column("allowed")
        table.add_column("default")
        for field in spec.fields:
            table.add_row(
                field.name + (" *" if field.required else ""),
                field.kind,
                _allowed(field),
                "" if field.default is None else str(field.default),
            )
        out.print(table)
        out.print(
            f"  POST {spec.path} · input {', '.join(spec.input_formats)} ≤ "
            f"{spec.max_input_bytes // 2**20} MB · duration = {spec.duration_semantics} "
            "seconds\n"
        )


def _allowed(field: Any) -> str:
    if field.choices:
        return ", ".join(field.choices)
    if field.minimum is not None or field.maximum is not None:
        return f"{field.minimum} … {field.maximum}"
    if field.max_length is not None:
        return f"≤ {field.max_length} chars"
    return ""


@app.command()
def account() -> None:
    """Show the account balance and the key's queue (concurrency) status."""
    from rh_extend.clients import runninghub_client

    try:
        with runninghub_client(load_settings()) as client:
            status, queue = client.account_status(), client.queue_status()
    except (RunningHubError, ConfigurationError) as exc:
        err.print(f"[bold red]error[/] {exc}")
        raise typer.Exit(exit_code_for(exc)) from None
    table = Table(show_header=False, box=None)
    table.add_row("balance", f"{status.remain_money} {status.currency}")
    table.add_row("coins", str(status.remain_coins))
    table.add_row("running tasks", f"{queue.running_count} of {queue.concurrent_limit}")
    table.add_row("queued tasks", str(queue.queued_count))
    out.print(table)


@app.command("sandbox")
def run_sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8700,
) -> None:
    """Run the local RunningHub sandbox in the foreground (Ctrl-C stops it)."""
    from rh_extend.local_servers import LOCAL_API_KEY
    from sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(api_keys={LOCAL_API_KEY}), host="127.0.0.1", port=port) as sb:
        out.print(
            f"Sandbox at {sb.base_url} · API key {LOCAL_API_KEY}\n"
            f"export RUNNINGHUB_BASE_URL={sb.base_url} RUNNINGHUB_ALLOW_HTTP=1 "
            f"RUNNINGHUB_API_KEY={LOCAL_API_KEY}"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            out.print("stopped")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the sample clip and downloads go.")] = Path(
        ".demo"
    ),
) -> None:
    """Run the whole chain on the embedded default: sandbox + local S3 + local Prefect."""
    from rh_extend.demo import run_demo

    sys.exit(run_demo(workdir.resolve(), out, err))


# --- unattended operation: batches, serving deployments, the event receiver -----------------


@app.command()
def batch(
    manifest: Annotated[
        str | None, typer.Argument(help="CSV or JSONL manifest: local path or s3:// URI.")
    ] = None,
    inbox: Annotated[
        str | None,
        typer.Option(help="Instead of a manifest: an s3:// inbox prefix, or 'default'."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Default model.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Default prompt.")] = None,
    params: Annotated[
        str | None, typer.Option(help="Default parameters as JSON, e.g. '{\"duration\": 5}'.")
    ] = None,
    max_parallel: Annotated[int, typer.Option(help="Items running at once.")] = 4,
    dispatch: Annotated[
        str,
        typer.Option(
            help="subflow: a flow run per video, here; task: one task run per video, here "
            "(leanest, for big batches); deployment: runs of extend-video on workers."
        ),
    ] = "subflow",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extend every video of a manifest or an S3 inbox; exit 1 when every item failed."""
    from rh_extend.flows.direct import direct_runs
    from rh_extend.flows.extend_batch import extend_batch

    with direct_runs():
        try:
            state = extend_batch(
                manifest=manifest,
                inbox=inbox,
                model=model,
                prompt=prompt,
                params=json.loads(params) if params else None,
                max_parallel=max_parallel,
                dispatch=dispatch,
                return_state=True,
            )
        finally:
            settle()
    value = state.result(raise_on_failure=False)
    summary = getattr(value, "summary", value)
    if as_json and hasattr(summary, "model_dump_json"):
        print(summary.model_dump_json())
    else:
        (err if state.is_failed() else out).print(state.message or state.name)
    raise typer.Exit(0 if state.is_completed() else 1)


@app.command()
def serve(
    only: Annotated[
        list[str] | None, typer.Option(help="Serve only this deployment (repeatable).")
    ] = None,
    inbox_interval: Annotated[
        float | None, typer.Option(help="Run extend-inbox every N seconds instead of its cron.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Flow runs at once.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME.PARAM=JSON: override a deployment parameter."),
    ] = None,
) -> None:
    """Serve the deployments (schedules and event triggers included) from this process."""
    from rh_extend.deployments.serve import parse_overrides
    from rh_extend.deployments.serve import serve as serve_deployments

    serve_deployments(only, inbox_interval, limit, parse_overrides(overrides or []))


@app.command()
def receiver(
    host: Annotated[str | None, typer.Option(help="Default RH_EXTEND_RECEIVER_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default RH_EXTEND_RECEIVER_PORT.")] = None,
) -> None:
    """HTTP receiver: RunningHub webhooks and "new video" posts become Prefect events."""
    from rh_extend.receiver import run

    try:
        run(host, port)
    except ValueError as exc:
        err.print(f"[bold red]error[/] {exc}")
        raise typer.Exit(2) from None


@app.command()
def deployments(
    write: Annotated[
        bool,
        typer.Option(help="Regenerate prefect.yaml, prefect.local.yaml and requirements.txt."),
    ] = False,
    path: Annotated[Path, typer.Option(help="The prefect.yaml to check or write.")] = Path(
        "prefect.yaml"
    ),
) -> None:
    """Check prefect.yaml, prefect.local.yaml and requirements.txt against the deployment
    definitions and pyproject.toml, or --write them."""
    from rh_extend.deployments.definitions import (
        check_prefect_yaml,
        generated_paths,
        write_prefect_yaml,
    )

    if write:
        write_prefect_yaml(path)
        out.print("wrote " + ", ".join(str(p) for p in generated_paths(path)))
        return
    problems = check_prefect_yaml(path)
    for problem in problems:
        err.print(problem)
    if problems:
        err.print("run `rh-extend deployments --write` to regenerate it")
        raise typer.Exit(1)
    out.print(f"{', '.join(str(p) for p in generated_paths(path))}: match their sources")


@app.command()
def collect(
    min_age: Annotated[
        float, typer.Option(help="Leave records younger than this many seconds to their run.")
    ] = 60.0,
    cancel_running_after: Annotated[
        float | None,
        typer.Option(help="Cancel a task still running when its record is older (seconds)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Archive paid results no live run will archive (the run crashed, was killed or
    cancelled); record tasks that failed. Never submits."""
    from rh_extend.flows.collect_orphans import collect_orphans
    from rh_extend.flows.direct import direct_runs

    with direct_runs():
        try:
            summary = collect_orphans(
                min_age_s=min_age, cancel_running_after_s=cancel_running_after
            )
        except Exception as exc:
            err.print(f"[bold red]error[/] [{ErrorInfo.from_exception(exc).code}] {exc}")
            raise typer.Exit(exit_code_for(exc)) from None
        finally:
            settle()
    if as_json:
        print(summary.model_dump_json())
    else:
        out.print(summary.line())
        for item in summary.items:
            out.print(
                f"  {item.request_key[:16]}  task {item.task_id}  {item.outcome}  {item.detail}"
            )
    raise typer.Exit(1 if any(i.outcome == "error" for i in summary.items) else 0)


@app.command()
def runs(
    since: Annotated[
        str, typer.Option(help="How far back: 90s, 30m, 24h, 7d, 2w (a bare number is hours).")
    ] = "24h",
    limit: Annotated[int, typer.Option(help="Show at most this many runs (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Recent extend-video runs from the Prefect API: state, model, cost, duration, output."""
    from rh_extend.observe.runs import main as list_runs

    raise typer.Exit(list_runs(since, limit, as_json, out, err))


# --- credentials blocks ------------------------------------------------------------------------

blocks_app = typer.Typer(help="Credentials in Prefect blocks, which workers read.")
app.add_typer(blocks_app, name="blocks")


@blocks_app.command("create")
def create_blocks(
    key_block: Annotated[
        str, typer.Option(help="Name of the Secret block for RUNNINGHUB_API_KEY.")
    ] = DEFAULT_KEY_BLOCK,
    aws_block: Annotated[
        str, typer.Option(help="Name of the AwsCredentials block for the AWS_* variables.")
    ] = DEFAULT_AWS_BLOCK,
    overwrite: Annotated[bool, typer.Option(help="Replace blocks that already exist.")] = False,
) -> None:
    """Write the credentials of this environment into Prefect blocks and print the settings
    that point workers at them (never the secrets themselves)."""
    import os

    from rh_extend import credentials

    try:
        planned, notes = credentials.planned_blocks(
            os.environ, load_settings().runninghub_api_key, key_block, aws_block
        )
        for note in notes:
            err.print(note)
        if not planned:
            raise ConfigurationError("nothing to write: no credentials in the environment")
        taken = [] if overwrite else credentials.existing(planned)
        if taken:
            names = " and ".join(f"{b.kind} block {b.name!r}" for b in taken)
            verb = "exists" if len(taken) == 1 else "exist"
            raise ConfigurationError(
                f"{names} already {verb} in the Prefect API: pass --overwrite to replace"
            )
        credentials.save(planned, overwrite)
    except ConfigurationError as exc:
        err.print(f"[bold red]error[/] {exc}")
        raise typer.Exit(2) from None
    out.print(f"Prefect API: {credentials.api_url()}", soft_wrap=True)
    for block in planned:
        sources = ", ".join(block.sources)
        out.print(f"wrote {block.kind} block {block.name!r} (from {sources})", soft_wrap=True)
    exports = " ".join(f"{block.setting}={block.name}" for block in planned)
    out.print("On workers, set these instead of the variables the blocks came from:")
    out.print(f"export {exports}", soft_wrap=True, highlight=False)


if __name__ == "__main__":
    app()
