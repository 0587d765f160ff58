"""Typed views of RunningHub's answers, lenient where RunningHub is inconsistent.

Every quirk documented in the contract is accepted here, so the client code never has to
care: ids as numbers, numbers as strings, `""`/`"0"`/`0` meaning "no error", `fileName` or
`filename`, `url` or `outputUrl`, null lists, enveloped or flat bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeAlias

from pydantic import AliasChoices, Field, field_validator, model_validator

from ._values import Usage, WireModel, blank_to_none, to_decimal, to_text
from .exceptions import ProtocolError

__all__ = [
    "AccountStatus",
    "CancelOutcome",
    "DownloadResult",
    "Failed",
    "OutputFile",
    "PricePreview",
    "QueueStatus",
    "Queued",
    "Running",
    "Succeeded",
    "TaskResponse",
    "TaskState",
    "TaskStatus",
    "UploadResult",
    "Usage",
]


CancelOutcome: TypeAlias = Literal["cancelled", "not_found", "already_ended"]
"""What a cancel request came to: the task stops; RunningHub doesn't know it; it had ended."""


class TaskStatus(StrEnum):
    CREATE = "CREATE"  # accepted, not yet queued: counts as queued
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCEL = "CANCEL"  # terminal: counts as failed


class OutputFile(WireModel):
    url: str | None = Field(None, validation_alias=AliasChoices("url", "outputUrl"))
    output_type: str | None = Field(None, alias="outputType")
    text: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return to_text(value)


# --- the typed state of a task (fal-client style) ------------------------------------------


@dataclass(frozen=True)
class Queued:
    position: int | None = None


@dataclass(frozen=True)
class Running:
    pass


@dataclass(frozen=True)
class Succeeded:
    outputs: tuple[OutputFile, ...]
    usage: Usage | None = None


@dataclass(frozen=True)
class Failed:
    code: str | None
    message: str
    failed_reason: dict[str, Any] | str | None = None


TaskState: TypeAlias = Queued | Running | Succeeded | Failed


class TaskResponse(WireModel):
    """The submit and query answer. Read `.state` to know what it means."""

    task_id: str | None = Field(None, alias="taskId")
    status: TaskStatus | None = None
    error_code: str | None = Field(None, alias="errorCode")
    error_message: str | None = Field(None, alias="errorMessage")
    failed_reason: dict[str, Any] | str | None = Field(None, alias="failedReason")
    usage: Usage | None = None
    results: list[OutputFile] = Field(default_factory=list)
    client_id: str | None = Field(None, alias="clientId")
    prompt_tips: str | None = Field(None, alias="promptTips")

    @field_validator("task_id", "client_id", "error_message", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return to_text(value)

    @field_validator("prompt_tips", mode="before")
    @classmethod
    def _tips(cls, value: Any) -> Any:
        # sometimes an object: keep it readable rather than reject the whole answer
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False) if value else None
        return to_text(value)

    @field_validator("error_code", mode="before")
    @classmethod
    def _error_code(cls, value: Any) -> Any:
        # "", "0" and 0 all mean "no error"
        value = to_text(value)
        return None if value is None or value.strip() == "0" else value.strip()

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        value = blank_to_none(value)
        if value is None:
            return None
        text = str(value).strip().upper()
        if text not in TaskStatus.__members__:
            # an unknown status is an error, not a reason to poll forever
            raise ProtocolError(
                f"RunningHub answered an unknown task status {str(value)[:40]!r}",
                excerpt=str(value)[:40],
            )
        return TaskStatus(text)

    @field_validator("failed_reason", mode="before")
    @classmethod
    def _failed_reason(cls, value: Any) -> Any:
        if value in ({}, [], "") or value is None:
            return None
        return value if isinstance(value, dict | str) else json.dumps(value)

    @field_validator("results", mode="before")
    @classmethod
    def _results(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("usage", mode="before")
    @classmethod
    def _usage(cls, value: Any) -> Any:
        return None if value in ({}, "") else value

    @property
    def state(self) -> TaskState:
        """What the answer means, applying RunningHub's rules rather than `status` alone."""
        # A non-empty errorCode/errorMessage is a failure even while status says RUNNING.
        if self.error_code is not None or self.error_message is not None:
            message = self.error_message or _reason_text(self.failed_reason) or "the task failed"
            return Failed(self.error_code, message, self.failed_reason)
        status = self.status
        if status in (TaskStatus.CREATE, TaskStatus.QUEUED):
            return Queued()
        if status is TaskStatus.RUNNING:
            return Running()
        if status is TaskStatus.SUCCESS:
            outputs = tuple(item for item in self.results if item.url)
            if not outputs:
                return Failed(None, "the task succeeded without any output file", None)
            return Succeeded(outputs, self.usage)
        if status is TaskStatus.CANCEL:
            return Failed(None, "the task was cancelled", self.failed_reason)
        if status is TaskStatus.FAILED:
            message = _reason_text(self.failed_reason) or "the task failed"
            return Failed(None, message, self.failed_reason)
        raise ProtocolError("RunningHub answered without a task status or an error")


def _reason_text(reason: dict[str, Any] | str | None) -> str | None:
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict):
        for key in ("exception_message", "message", "msg", "error"):
            if reason.get(key):
                node = reason.get("node_name")
                text = str(reason[key])
                return f"{text} (node {node})" if node else text
    return None


# --- other answers ------------------------------------------------------------------------


class UploadResult(WireModel):
    download_url: str = Field(validation_alias=AliasChoices("download_url", "downloadUrl", "url"))
    file_name: str | None = Field(
        None, validation_alias=AliasChoices("fileName", "filename", "file_name")
    )
    size: int | None = None
    type: str | None = None

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return blank_to_none(value)


class AccountStatus(WireModel):
    remain_coins: int | None = Field(None, alias="remainCoins")
    current_task_counts: int | None = Field(None, alias="currentTaskCounts")
    remain_money: Decimal | None = Field(None, alias="remainMoney")
    currency: str | None = None
    api_type: str | None = Field(None, alias="apiType")

    @field_validator("*", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return blank_to_none(value)

    @field_validator("remain_coins", "current_task_counts", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        # "177814.0" is still a count; do not reject the whole answer over a decimal point
        amount = to_decimal(value) if isinstance(value, str) else None
        return int(amount) if amount is not None and amount == amount.to_integral() else value


class QueueStatus(WireModel):
    api_key_type: str | None = Field(None, alias="apiKeyType")
    concurrent_limit: int = Field(alias="concurrentLimit")
    running_count: int = Field(0, alias="runningCount")
    queued_count: int = Field(0, alias="queuedCount")
    total_current_tasks: int = Field(0, alias="totalCurrentTasks")

    @field_validator("running_count", "queued_count", "total_current_tasks", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        value = blank_to_none(value)
        return 0 if value is None else value


class PricePreview(WireModel):
    estimated_price: Decimal = Field(alias="estimatedPrice")
    currency: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # accept both the flat body and the {code, msg, data: {...}} envelope
        if isinstance(data, dict) and "estimatedPrice" not in data:
            inner = data.get("data")
            if isinstance(inner, dict):
                return inner
        return data


class DownloadResult(WireModel):
    path: Path
    size: int
    sha256: str
    resumed: int = 0  # how many times the transfer continued with a Range request
