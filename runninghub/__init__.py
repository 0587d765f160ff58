"""A typed client for RunningHub's video-extend models.

    from runninghub import RunningHubClient, get_model

    spec = get_model("wan-2.7")
    with RunningHubClient(api_key) as rh:
        video = rh.upload(Path("clip.mp4"))
        task = rh.submit(spec.id, spec.build_body(video.download_url, {"duration": 10}))
        done = rh.wait(task.task_id)
        rh.download(done.results[0].url, Path("out.mp4"))

Nothing here knows about Prefect: the pipeline wraps these calls in its own tasks.
"""

from .catalog import CATALOG, DurationSemantics, FieldSpec, ModelSpec, get_model
from .client import DEFAULT_BASE_URL, RetryPolicy, RunningHubClient
from .exceptions import (
    AuthenticationError,
    ConcurrencyLimitError,
    ContentRejectedError,
    InputValidationError,
    InsufficientBalanceError,
    InvalidRequestError,
    LinkExpiredError,
    PollTimeoutError,
    ProtocolError,
    RateLimitedError,
    RunningHubError,
    SubmitOutcomeUnknownError,
    TaskAlreadyEndedError,
    TaskFailedError,
    TaskNotFoundError,
    TerminalError,
    TransientError,
    error_for_code,
)
from .models import (
    AccountStatus,
    CancelOutcome,
    DownloadResult,
    Failed,
    OutputFile,
    PricePreview,
    Queued,
    QueueStatus,
    Running,
    Succeeded,
    TaskResponse,
    TaskState,
    TaskStatus,
    UploadResult,
    Usage,
)

__all__ = [
    "CATALOG",
    "DEFAULT_BASE_URL",
    "AccountStatus",
    "AuthenticationError",
    "CancelOutcome",
    "ConcurrencyLimitError",
    "ContentRejectedError",
    "DownloadResult",
    "DurationSemantics",
    "Failed",
    "FieldSpec",
    "InputValidationError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "LinkExpiredError",
    "ModelSpec",
    "OutputFile",
    "PollTimeoutError",
    "PricePreview",
    "ProtocolError",
    "QueueStatus",
    "Queued",
    "RateLimitedError",
    "RetryPolicy",
    "Running",
    "RunningHubClient",
    "RunningHubError",
    "SubmitOutcomeUnknownError",
    "Succeeded",
    "TaskAlreadyEndedError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskResponse",
    "TaskState",
    "TaskStatus",
    "TerminalError",
    "TransientError",
    "UploadResult",
    "Usage",
    "error_for_code",
    "get_model",
]
