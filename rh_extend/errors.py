"""Pipeline errors, on top of the client's `runninghub.RunningHubError` hierarchy.

`exit_code` is what the CLI returns: 2 means "fix the input or configuration; nothing was paid".
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


class SubmissionInProgressError(PipelineError):
    """Another run holds the claim on this request key right now."""

    code = "SUBMIT_IN_PROGRESS"

    def __init__(self, request_key: str, record_uri: str) -> None:
        super().__init__(
            f"Another run is submitting request {request_key} right now ({record_uri}); "
            "rerun later to pick up its result instead of paying twice."
        )
        self.request_key = request_key


class ArchiveMismatchError(PipelineError):
    """What came back or what was stored is not what it should be."""

    code = "VERIFY"


class BudgetExceededError(PipelineError):
    """The price preview is over the run's budget, or can't be had while a budget is set."""

    exit_code = 2
    code = "BUDGET"
