"""Pipeline errors, on top of the client's `runninghub.RunningHubError` hierarchy.

Every error the pipeline raises is a `PipelineError` with a `code` (what `--json` prints in
`error.code` and a batch lists per item) and an `exit_code`: what the CLI returns, where 2 means
"fix the input or configuration; nothing was paid".
"""

from __future__ import annotations

from runninghub import InputValidationError


class PipelineError(Exception):
    exit_code = 1
    code = "RH_EXTEND"


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, InputValidationError):
        return 2
    if isinstance(exc, PipelineError):
        return exc.exit_code
    return 1


class ConfigurationError(PipelineError):
    """A setting is missing or unusable; found before any paid call."""

    exit_code = 2
    code = "CONFIG"


class SourceError(PipelineError):
    """The source video can't be used for this model; found before any paid call."""

    exit_code = 2
    code = "SOURCE"


class UnresolvedSubmissionError(PipelineError):
    """An earlier run sent this exact request but never learned its taskId."""

    code = "SUBMIT_OUTCOME_UNKNOWN"

    def __init__(self, request_key: str, record_uri: str, since: str) -> None:
        super().__init__(
            f"An earlier run submitted request {request_key} at {since} but its answer was lost, "
            "so a task may exist and be billed. Check the RunningHub call record "
            "(runninghub.ai → API → call records) before paying again; rerun with --resubmit "
            f"to submit anyway. Record: {record_uri}"
        )
        self.request_key = request_key


class CancelledRequestError(PipelineError):
    """This request's task was cancelled with its run; a rerun doesn't pay again by itself."""

    code = "CANCELLED"

    def __init__(self, request_key: str, task_id: str, at: str, record_uri: str) -> None:
        super().__init__(
            f"Request {request_key} was cancelled at {at} (RunningHub task {task_id}), so nothing "
            "was submitted now. Rerun with --resubmit to submit it again: a new paid task. "
            f"Record: {record_uri}"
        )
        self.request_key = request_key
        self.task_id = task_id


class SubmissionInProgressError(PipelineError):
    """Another run holds the claim on this request key right now."""

    code = "SUBMIT_IN_PROGRESS"

    def __init__(self, request_key: str, record_uri: str) -> None:
        super().__init__(
            f"Another run is submitting request {request_key} right now ({record_uri}); "
            "rerun later to pick up its result instead of paying twice."
        )
        self.request_key = request_key


class MediaError(PipelineError):
    """The file is not a video we can read."""

    code = "MEDIA"


class ArchiveError(PipelineError):
    """The archive is unusable or holds something other than what we wrote."""

    code = "ARCHIVE"


class SlotWaitTimeoutError(PipelineError):
    """No RunningHub slot came free within RH_EXTEND_CONCURRENCY_WAIT_S; nothing was submitted."""

    code = "SLOT_WAIT_TIMEOUT"


class ArchiveMismatchError(PipelineError):
    """What came back or what was stored is not what it should be."""

    code = "VERIFY"


class BudgetExceededError(PipelineError):
    """The price preview is over the run's budget, or can't be had while a budget is set."""

    exit_code = 2
    code = "BUDGET"
