"""Observability: every run explains itself in the Prefect UI (docs/observability.md).

The pipeline calls only what is re-exported here; each call is best-effort (a reporting failure
is logged and the run goes on) and never carries the API key.
"""

from rh_extend.observe.artifacts import (
    ProgressArtifact,
    artifact_key,
    publish_run,
    store_contact_sheet,
)
from rh_extend.observe.context import run_scope
from rh_extend.observe.events import task_succeeded
from rh_extend.observe.hooks import (
    finished,
    report_cancelled,
    report_crashed,
    report_failed_run,
    report_failure,
    submitted,
    tag_run,
    track_run,
)
from rh_extend.observe.render import batch_rows, render_batch_markdown
from rh_extend.observe.writer import report_writes

__all__ = [
    "ProgressArtifact",
    "artifact_key",
    "batch_rows",
    "finished",
    "publish_run",
    "render_batch_markdown",
    "report_cancelled",
    "report_crashed",
    "report_failed_run",
    "report_failure",
    "report_writes",
    "run_scope",
    "store_contact_sheet",
    "submitted",
    "tag_run",
    "task_succeeded",
    "track_run",
]
