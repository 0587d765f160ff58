"""What a finished batch leaves: its report and table artifacts, and `rh-extend.batch.finished`
with the counts and the failed items' causes, for automations that alert on failures.

The text and rows are `rh_extend.observe`'s (`render_batch_markdown`, `batch_rows`).
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from rh_extend import observe
from rh_extend.flows.batch.outcomes import BatchSummary

BATCH_FINISHED = "rh-extend.batch.finished"
REPORT_KEY = "extend-batch-report"
TABLE_KEY = "extend-batch-items"


def report(summary: BatchSummary) -> None:
    """The batch's report and table (sent side by side with the items' last reports) and
    `rh-extend.batch.finished`; returns once all of them are with Prefect."""
    batch, description = str(flow_run.id), summary.line()
    markdown = observe.render_batch_markdown(summary.source, description, summary.items)
    rows = observe.batch_rows(summary.items)

    def send_report() -> None:
        create_markdown_artifact(markdown, key=REPORT_KEY, description=description)

    def send_table() -> None:
        create_table_artifact(rows, key=TABLE_KEY, description=description)

    observe.report_writes.put(("batch-report", batch), send_report)
    if summary.items:
        observe.report_writes.put(("batch-table", batch), send_table)
    _emit_finished(summary, batch)
    observe.report_writes.flush()


def _emit_finished(summary: BatchSummary, batch: str) -> None:
    emit_event(
        BATCH_FINISHED,
        resource={
            "prefect.resource.id": f"rh-extend.batch.{batch}",
            "prefect.resource.name": summary.source,
        },
        payload={
            **summary.model_dump(mode="json", exclude={"items"}),
            "failed_items": [
                {"item": o.label, "cause": o.cause} for o in summary.items if o.status == "failed"
            ],
        },
    )
