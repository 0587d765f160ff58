"""Serve every deployment of `definitions.py` from one local process (no work pool, no worker).

    python -m rh_extend.deployments.serve            # or: rh-extend serve
    python -m rh_extend.deployments.serve --only extend-video --limit 4

The process registers the deployments (schedules and event triggers included) with the Prefect
API in PREFECT_API_URL, then polls for their runs and executes each in a subprocess, with this
process's environment (RUNNINGHUB_*, RH_EXTEND_*, AWS_*). Ctrl-C stops it and pauses the
schedules. For development and tests, `--inbox-interval` replaces the inbox cron with an interval
and `--set NAME.PARAM=JSON` overrides one parameter of one deployment.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from rh_extend.deployments.definitions import RUN_ENV, TIMEZONE, DeploymentDef, deployments

Overrides = dict[str, dict[str, object]]


def runner_deployment(
    definition: DeploymentDef,
    interval_s: float | None = None,
    parameters: dict[str, object] | None = None,
) -> Any:
    """The served form of a definition: same name, parameters, schedule and triggers."""
    from prefect.events import DeploymentTriggerTypes
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType
    from prefect.utilities.importtools import import_object
    from pydantic import TypeAdapter

    flow = import_object(definition.module_entrypoint)
    adapter: TypeAdapter[Any] = TypeAdapter(DeploymentTriggerTypes)
    schedules = []
    if interval_s is not None:
        schedules = [Interval(interval_s, timezone=TIMEZONE)]
    elif definition.cron:
        schedules = [Cron(definition.cron, timezone=TIMEZONE)]
    return flow.to_deployment(
        name=definition.name,
        description=definition.description,
        tags=list(definition.tags),
        parameters={**definition.parameters, **(parameters or {})},
        schedules=schedules,
        triggers=[adapter.validate_python(dict(t)) for t in definition.triggers],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def parse_overrides(pairs: Sequence[str]) -> Overrides:
    """`NAME.PARAM=JSON` (or a plain string value) → {NAME: {PARAM: value}}."""
    overrides: Overrides = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        name, dot, param = target.partition(".")
        if not sep or not dot or not name or not param:
            raise SystemExit(f"--set wants NAME.PARAM=VALUE, not {pair!r}")
        try:
            value: object = json.loads(raw)
        except ValueError:
            value = raw
        overrides.setdefault(name, {})[param] = value
    return overrides


def runner_deployments(
    only: Sequence[str] | None = None,
    inbox_interval_s: float | None = None,
    overrides: Overrides | None = None,
) -> list[Any]:
    known = {d.name for d in deployments()}
    unknown = (set(only or ()) | set(overrides or {})) - known
    if unknown:
        raise SystemExit(f"unknown deployment(s): {', '.join(sorted(unknown))}")
    return [
        runner_deployment(
            d,
            inbox_interval_s if d.name == "extend-inbox" else None,
            (overrides or {}).get(d.name),
        )
        for d in deployments()
        if not only or d.name in only
    ]


def serve(
    only: Sequence[str] | None = None,
    inbox_interval_s: float | None = None,
    limit: int | None = None,
    overrides: Overrides | None = None,
) -> None:
    from prefect import serve as prefect_serve

    for name, value in RUN_ENV.items():
        os.environ.setdefault(name, value)  # the runs are subprocesses: they inherit it
    prefect_serve(*runner_deployments(only, inbox_interval_s, overrides), limit=limit)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rh_extend.deployments.serve")
    parser.add_argument("--only", action="append", help="serve only this deployment (repeat)")
    parser.add_argument(
        "--inbox-interval",
        type=float,
        default=None,
        help="run extend-inbox every N seconds instead of its cron (development, tests)",
    )
    parser.add_argument("--limit", type=int, default=None, help="runs at once (default 5)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME.PARAM=JSON",
        help="override one deployment parameter (development, tests)",
    )
    args = parser.parse_args(argv)
    serve(args.only, args.inbox_interval, args.limit, parse_overrides(args.set))


if __name__ == "__main__":
    main()
