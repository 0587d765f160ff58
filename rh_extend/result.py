"""What one extension run returns, and the one-line JSON the CLI prints for scripts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

PEOPLE_ONLY = {"presigned_url", "reused_archive", "flow_run_id"}


class ErrorInfo(BaseModel):
    code: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        code = getattr(exc, "code", None) or type(exc).__name__
        return cls(code=str(code), message=str(exc))


class ExtendResult(BaseModel):
    status: Literal["succeeded", "failed"]
    request_key: str | None = None
    task_id: str | None = None
    model: str
    output_uri: str | None = None
    manifest_uri: str | None = None
    output_sha256: str | None = None
    output_duration_s: float | None = None
    cost: float | None = None
    error: ErrorInfo | None = None
    # Not part of the scripting contract: shown to people only.
    presigned_url: str | None = None
    reused_archive: bool = False
    flow_run_id: str | None = None

    def json_line(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=PEOPLE_ONLY)
