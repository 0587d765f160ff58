"""The one source of truth for how the flows run unattended: deployments, schedules, triggers.

`serve.py` builds its deployments from `DEPLOYMENTS`, and `prefect.yaml` is generated from it
(`rh-extend deployments --write`); a unit test fails when the file and this module disagree, so
the two ways of running (one local `serve` process, or workers on the `video-extend` pool) can't
drift apart.

    extend-video   on demand, and on every `rh-extend.video.arrived` event (trigger)
    extend-inbox   every 15 minutes: the S3 inbox (`<archive prefix>/inbox/`), one batch a tick
    extend-batch   on demand: a manifest (CSV/JSONL, path or s3:// URI)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rh_extend.request import ExtendRequest

POOL = "video-extend"
VIDEO_ARRIVED = "rh-extend.video.arrived"
VIDEO_RESOURCE_PREFIX = "rh-extend.video."
INBOX_CRON = "*/15 * * * *"
TIMEZONE = "UTC"
# prefect.yaml names flows by file path from the repository root, as `prefect init` and Prefect's
# docs write them; `serve` imports the same flows by module path, so it runs from any directory
# once rh-extend is installed (`flows/x.py` is installed as `rh_extend.flows.x`).
EXTEND_VIDEO_ENTRYPOINT = "flows/extend_video.py:extend_video"
EXTEND_BATCH_ENTRYPOINT = "flows/extend_batch.py:extend_batch"

# Environment every run of these deployments gets (job variables on the pool; the serve process
# sets them for its runs). Persisted results let a batch read its deployment children's results.
RUN_ENV = {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"}

# Event payload → extend_video's `request`: `source`, `model`, `prompt`, and `params` for the
# request's other fields (each None when absent: the model's default). `resubmit` (pay again)
# is never taken from an event: that stays a deliberate, manual decision.
PAYLOAD_FIELDS = ("source", "model", "prompt")


def event_param_names() -> tuple[str, ...]:
    """The `params` keys an arrival event may carry: the request's other fields."""
    return tuple(name for name in ExtendRequest.model_fields if name not in PAYLOAD_FIELDS)


def arrival_parameters() -> dict[str, Any]:
    """The trigger's parameters: the arrival payload mapped into `request` (Prefect renders
    each `{{ }}` template to a JSON value: a number stays a number, `none` becomes null)."""
    request = {
        "source": "{{ event.payload.source }}",
        "model": "{{ event.payload.model }}",
        "prompt": "{{ event.payload.prompt | default(none) }}",
    }
    for name in event_param_names():
        request[name] = f"{{{{ event.payload.params.{name} | default(none) }}}}"
    return {"request": request}


@dataclass(frozen=True)
class DeploymentDef:
    name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...] = ("rh-extend",)
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    triggers: tuple[dict[str, Any], ...] = ()

    @property
    def module_entrypoint(self) -> str:
        """`flows/extend_video.py:extend_video` → `rh_extend.flows.extend_video:extend_video`."""
        path, _, name = self.entrypoint.partition(":")
        return f"rh_extend.{path.removesuffix('.py').replace('/', '.')}:{name}"

    def yaml_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "entrypoint": self.entrypoint,
            "tags": list(self.tags),
            "parameters": self.parameters,
            "work_pool": {
                "name": POOL,
                "work_queue_name": None,
                "job_variables": {"env": dict(RUN_ENV)},
            },
            "schedules": (
                [{"cron": self.cron, "timezone": TIMEZONE, "active": True}] if self.cron else []
            ),
        }
        if self.triggers:
            entry["triggers"] = [dict(t) for t in self.triggers]
        return entry


def deployments() -> tuple[DeploymentDef, ...]:
    return (
        DeploymentDef(
            name="extend-video",
            entrypoint=EXTEND_VIDEO_ENTRYPOINT,
            description=(
                "Extend one video and archive it in S3. Runs on demand, and on every "
                f"`{VIDEO_ARRIVED}` event (payload: source, model, prompt, params)."
            ),
            triggers=(
                {
                    "type": "event",
                    "name": "extend-video on rh-extend.video.arrived",
                    "description": "A new video arrived: extend it with the payload's parameters",
                    "enabled": True,
                    "match": {"prefect.resource.id": f"{VIDEO_RESOURCE_PREFIX}*"},
                    "expect": [VIDEO_ARRIVED],
                    "posture": "Reactive",
                    "threshold": 1,
                    "within": 0,
                    "parameters": arrival_parameters(),
                },
            ),
        ),
        DeploymentDef(
            name="extend-inbox",
            entrypoint=EXTEND_BATCH_ENTRYPOINT,
            description=(
                "Every 15 minutes: extend the new videos of the S3 inbox "
                "(`<archive prefix>/inbox/`, sidecar `<name>.json` for parameters) and mark them."
            ),
            parameters={"inbox": "default", "max_parallel": 4, "settle_s": 30},
            cron=INBOX_CRON,
        ),
        DeploymentDef(
            name="extend-batch",
            entrypoint=EXTEND_BATCH_ENTRYPOINT,
            description="Extend every video of a manifest (CSV or JSONL, path or s3:// URI).",
            parameters={"max_parallel": 4},
        ),
    )


def by_name(name: str) -> DeploymentDef:
    for deployment in deployments():
        if deployment.name == name:
            return deployment
    raise KeyError(name)


# ------------------------------------------------------------------------------ prefect.yaml

YAML_HEADER = """\
# Generated from deployments/definitions.py — edit that file, then run
#   rh-extend deployments --write
# (tests/deploy/test_units.py fails when this file and the definitions disagree).
#
# Deploy onto the process work pool `video-extend`, from this folder (a checkout with rh-extend
# installed from it, `pip install .`):
#   prefect work-pool create video-extend --type process
#   prefect --no-prompt deploy --all
#   prefect worker start --pool video-extend
# `pull` is left to Prefect: for local code, `prefect deploy` records a set_working_directory
# step with this checkout's absolute path, and workers load flows/*.py from there (workers on
# the same machine or with the checkout at the same path; the same RUNNINGHUB_*/RH_EXTEND_*/
# AWS_* environment as a CLI user).
"""


def prefect_yaml() -> dict[str, Any]:
    return {
        "name": "rh-extend",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        # None: `prefect deploy` records the checkout it runs in (Prefect's default for local
        # code), where the file-path entrypoints resolve; "." would be the worker's temp folder.
        "pull": None,
        "deployments": [d.yaml_entry() for d in deployments()],
    }


def render_prefect_yaml() -> str:
    body: str = yaml.safe_dump(prefect_yaml(), sort_keys=False, allow_unicode=True, width=100)
    return YAML_HEADER + body


def default_yaml_path() -> Path:
    return Path.cwd() / "prefect.yaml"


def check_prefect_yaml(path: Path) -> list[str]:
    """Differences between the file and the definitions (empty: they agree)."""
    if not path.is_file():
        return [f"{path} does not exist"]
    on_disk = yaml.safe_load(path.read_text(encoding="utf-8"))
    wanted = prefect_yaml()
    problems = []
    for key in sorted(set(on_disk) | set(wanted)):
        if key != "deployments" and on_disk.get(key) != wanted.get(key):
            problems.append(
                f"{key}: file has {on_disk.get(key)!r}, definitions {wanted.get(key)!r}"
            )
    have = {d.get("name"): d for d in on_disk.get("deployments") or []}
    want = {d["name"]: d for d in wanted["deployments"]}
    for name in sorted(set(have) | set(want)):
        if have.get(name) != want.get(name):
            problems.append(f"deployment {name!r} differs from the definitions")
    return problems


def write_prefect_yaml(path: Path) -> None:
    path.write_text(render_prefect_yaml(), encoding="utf-8")
