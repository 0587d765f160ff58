"""One Prefect task per step of the chain. Options live here; logic lives in the libraries."""

from rh_extend.tasks.archive import archive_run
from rh_extend.tasks.download import Downloaded, download_output
from rh_extend.tasks.lookup import look_up
from rh_extend.tasks.poll import Finished, wait_for_task
from rh_extend.tasks.stage import StagedSource, stage_source
from rh_extend.tasks.submit import Submitted, submit_request
from rh_extend.tasks.upload import upload_and_price

__all__ = [
    "Downloaded",
    "Finished",
    "StagedSource",
    "Submitted",
    "archive_run",
    "download_output",
    "look_up",
    "stage_source",
    "submit_request",
    "upload_and_price",
    "wait_for_task",
]
