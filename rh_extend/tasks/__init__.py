"""One Prefect task per step of the chain. Options live here; logic lives in the libraries."""

from rh_extend.tasks.archive import archive_run, find_archived
from rh_extend.tasks.download import Downloaded, download_output
from rh_extend.tasks.poll import Finished, wait_for_task
from rh_extend.tasks.price import preview_price
from rh_extend.tasks.stage import StagedSource, stage_source
from rh_extend.tasks.submit import Submitted, find_submission, submit_request
from rh_extend.tasks.upload import upload_source

__all__ = [
    "Downloaded",
    "Finished",
    "StagedSource",
    "Submitted",
    "archive_run",
    "download_output",
    "find_archived",
    "find_submission",
    "preview_price",
    "stage_source",
    "submit_request",
    "upload_source",
    "wait_for_task",
]
