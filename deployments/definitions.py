"""The one source of truth for how the flows run unattended: deployments, schedules, triggers.

`serve.py` builds its deployments from `deployments()`, and `prefect.yaml` (workers clone the
code) and `prefect.local.yaml` (workers use this checkout) are generated from it, with the
workers' `requirements.txt` (`rh-extend deployments --write`); a unit test fails when the files
and this module disagree, so the ways of running (one local `serve` process, or workers on the
`video-extend` pool) can't drift apart.

    extend-video   on demand, and on every `rh-extend.video.arrived` event (trigger)
    extend-inbox   every 15 minutes: the S3 inbox (`<archive prefix>/inbox/`), one batch a tick
    extend-batch   on demand: a manifest (CSV/JSONL, path or s3:// URI)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rh_extend.request import ExtendRequest

POOL = "video-extend"
VIDEO_ARRIVED = "rh-extend.video.arrived"
VIDEO_RESOURCE_PREFIX = "rh-extend.video."
INBOX_CRON = "*/15 * * * *"
COLLECT_CRON = "7 * * * *"  # hourly, off the inbox's quarter hours
TIMEZONE = "UTC"
# prefect.yaml names flows by file path from the repository root, as `prefect init` and Prefect's
# docs write them; `serve` imports the same flows by module path, so it runs from any directory
# once rh-extend is installed (`flows/x.py` is installed as `rh_extend.flows.x`).
EXTEND_VIDEO_ENTRYPOINT = "flows/extend_video.py:extend_video"
EXTEND_BATCH_ENTRYPOINT = "flows/extend_batch.py:extend_batch"
COLLECT_ENTRYPOINT = "flows/collect_orphans.py:collect_orphans"

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
        DeploymentDef(
            name="collect-orphans",
            entrypoint=COLLECT_ENTRYPOINT,
            description=(
                "Hourly: archive paid results no live run will archive (its run crashed, was "
                "killed or cancelled), record failed ones. Never submits."
            ),
            parameters={"min_age_s": 300},
            cron=COLLECT_CRON,
        ),
    )


def by_name(name: str) -> DeploymentDef:
    for deployment in deployments():
        if deployment.name == name:
            return deployment
    raise KeyError(name)


# ------------------------------------------------------------------------------ prefect.yaml
#
# Two generated files carry the same deployments and differ only in how a worker gets the code:
#   prefect.yaml        `pull` clones the repository and installs requirements.txt: any machine
#                       with git, Python and Prefect can be a worker (docs/operations.md);
#   prefect.local.yaml  `pull` left to Prefect: the checkout `prefect deploy` ran in, for workers
#                       that have it at that path with rh-extend installed (`make scale-out`).
# requirements.txt (the runtime dependencies of pyproject.toml) is generated with them.

LOCAL_YAML = "prefect.local.yaml"
REQUIREMENTS = "requirements.txt"
# Read by `prefect deploy` when set there (the deployment then records the value); a variable
# unset at deploy time stays a template that each worker fills from its own environment at run
# time (Prefect's `{{ $NAME }}`). An empty branch clones the repository's default branch.
GIT_REPOSITORY_VAR = "RH_EXTEND_GIT_REPOSITORY"
GIT_BRANCH_VAR = "RH_EXTEND_GIT_BRANCH"
CLONE_STEP_ID = "clone"


def git_pull_steps() -> list[dict[str, Any]]:
    """Clone the code, then install its dependencies into the worker's Python.

    The run imports rh-extend from the clone (Prefect changes into it and puts it on sys.path to
    load `flows/…py`), so only third-party packages are installed: `pip install -r` of already
    satisfied requirements changes nothing (≈ 1 s) and is safe for concurrent runs, while
    `pip install .` would reinstall rh-extend (pip always reinstalls a local folder) into the
    shared site-packages under the runs importing it, and leave whichever commit ran last there."""
    return [
        {
            "prefect.deployments.steps.git_clone": {
                "id": CLONE_STEP_ID,
                "repository": f"{{{{ ${GIT_REPOSITORY_VAR} }}}}",
                "branch": f"{{{{ ${GIT_BRANCH_VAR} }}}}",
            }
        },
        {
            "prefect.deployments.steps.pip_install_requirements": {
                "directory": f"{{{{ {CLONE_STEP_ID}.directory }}}}",
                "requirements_file": REQUIREMENTS,
                "stream_output": False,
            }
        },
    ]


GENERATED = """\
# Generated from deployments/definitions.py — edit that file, then run
#   rh-extend deployments --write
# (tests/deploy/test_units.py fails when this file and the definitions disagree).
#
"""

YAML_HEADER = (
    GENERATED
    + """\
# Deploy onto the process work pool `video-extend`; workers fetch the code themselves (see
# docs/operations.md, "A worker from nothing"). `pull` clones the repository named by
# RH_EXTEND_GIT_REPOSITORY at RH_EXTEND_GIT_BRANCH (a branch or tag; empty: the default branch),
# then pip-installs its requirements.txt; the run imports rh-extend from that clone. Set both
# when deploying and the deployments record them; one unset then is read from each worker's
# environment at run time.
#   prefect work-pool create video-extend --type process
#   export RH_EXTEND_GIT_REPOSITORY=https://git.example.com/you/rh-extend.git
#   export RH_EXTEND_GIT_BRANCH=main
#   prefect --no-prompt deploy --all
#   prefect worker start --pool video-extend     # each worker: git, Python 3.11+, prefect
# Workers with this checkout at the same path and rh-extend installed: prefect.local.yaml.
"""
)

LOCAL_YAML_HEADER = (
    GENERATED
    + """\
# The deployments of prefect.yaml for workers that have this checkout, at the same path, with
# rh-extend installed from it (`pip install -e .`): one machine, as `make scale-out` runs them.
#   prefect work-pool create video-extend --type process
#   prefect --no-prompt deploy --all --prefect-file prefect.local.yaml
#   prefect worker start --pool video-extend
# `pull` is left to Prefect: for local code, `prefect deploy` records a set_working_directory
# step with this checkout's absolute path, and workers load flows/*.py from there.
"""
)


def prefect_yaml(local: bool = False) -> dict[str, Any]:
    """prefect.yaml (workers clone the code), or with `local` prefect.local.yaml."""
    return {
        "name": "rh-extend",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        # None: `prefect deploy` records the checkout it runs in (Prefect's default for local
        # code), where the file-path entrypoints resolve; "." would be the worker's temp folder.
        "pull": None if local else git_pull_steps(),
        "deployments": [d.yaml_entry() for d in deployments()],
    }


def render_prefect_yaml(local: bool = False) -> str:
    body: str = yaml.safe_dump(prefect_yaml(local), sort_keys=False, allow_unicode=True, width=100)
    return (LOCAL_YAML_HEADER if local else YAML_HEADER) + body


def runtime_requirements(pyproject: Path) -> list[str]:
    """pyproject.toml's `[project] dependencies`: what running the flows needs."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


REQUIREMENTS_HEADER = """\
# Generated from pyproject.toml's [project] dependencies — edit that file, then run
#   rh-extend deployments --write
# (tests/deploy/test_units.py fails when this file and pyproject.toml disagree).
#
# What a worker needs to run the flows from a clone of this repository: prefect.yaml's `pull`
# installs it; rh-extend itself is imported from the clone, not installed.
"""


def render_requirements(pyproject: Path) -> str:
    return REQUIREMENTS_HEADER + "".join(f"{line}\n" for line in runtime_requirements(pyproject))


def default_yaml_path() -> Path:
    return Path.cwd() / "prefect.yaml"


def generated_paths(path: Path) -> tuple[Path, Path, Path]:
    """prefect.yaml at `path`, and prefect.local.yaml and requirements.txt beside it."""
    return path, path.with_name(LOCAL_YAML), path.with_name(REQUIREMENTS)


def _yaml_problems(path: Path, wanted: dict[str, Any]) -> list[str]:
    if not path.is_file():
        return [f"{path} does not exist"]
    on_disk = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = []
    for key in sorted(set(on_disk) | set(wanted)):
        if key != "deployments" and on_disk.get(key) != wanted.get(key):
            problems.append(
                f"{path.name} {key}: file has {on_disk.get(key)!r}, definitions {wanted.get(key)!r}"
            )
    have = {d.get("name"): d for d in on_disk.get("deployments") or []}
    want = {d["name"]: d for d in wanted["deployments"]}
    for name in sorted(set(have) | set(want)):
        if have.get(name) != want.get(name):
            problems.append(f"{path.name}: deployment {name!r} differs from the definitions")
    return problems


def check_prefect_yaml(path: Path) -> list[str]:
    """Differences between the generated files (prefect.yaml at `path`, prefect.local.yaml and
    requirements.txt beside it) and their sources (empty: they agree)."""
    yaml_path, local_path, requirements_path = generated_paths(path)
    problems = _yaml_problems(yaml_path, prefect_yaml())
    problems += _yaml_problems(local_path, prefect_yaml(local=True))
    pyproject = path.with_name("pyproject.toml")
    if not requirements_path.is_file():
        problems.append(f"{requirements_path} does not exist")
    elif requirements_path.read_text(encoding="utf-8") != render_requirements(pyproject):
        problems.append(f"{requirements_path.name} differs from pyproject.toml's dependencies")
    return problems


def write_prefect_yaml(path: Path) -> None:
    """Write prefect.yaml at `path`, and prefect.local.yaml and requirements.txt beside it."""
    yaml_path, local_path, requirements_path = generated_paths(path)
    yaml_path.write_text(render_prefect_yaml(), encoding="utf-8")
    local_path.write_text(render_prefect_yaml(local=True), encoding="utf-8")
    pyproject = path.with_name("pyproject.toml")
    requirements_path.write_text(render_requirements(pyproject), encoding="utf-8")
