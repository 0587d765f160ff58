"""Fault tolerance, one row per fault: the whole chain (Prefect harness, sandbox over real HTTP,
moto S3) with one fault injected into the sandbox, checking the outcome AND the billing ledger.

Each row gets its own prompt (`<row-id>` inside it) and its faults match on it, so a fault can only
hit the call it was written for. Upload faults cannot be matched (an upload carries no prompt);
rows run one at a time, so they still hit only their own run.

A row is a list of steps (first run, then reruns): each step states the outcome (archived, or the
exception class and words its message must carry), how many submits of this row's prompt the
sandbox billed by then, how many submit requests the step sent, and what `submission.json` holds.
Every fault rule must have fired, so no row can pass because its fault never happened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from rh_extend.errors import UnresolvedSubmissionError
from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LocalServers
from rh_extend.request import ExtendRequest
from rh_extend.request_keys import request_key
from rh_extend.storage import Archive, parse_s3_uri
from runninghub import (
    InvalidRequestError,
    LinkExpiredError,
    PollTimeoutError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    get_model,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "skyreels-v3-shot-switching"  # the cheapest output (input + 2 s): keeps rows fast
DURATION = 2
TASK_ID = "{task_id}"  # in `Step.message`: replaced by the row's billed taskId

Record = Literal["absent", "intent", "task"]


@dataclass(frozen=True)
class Fault:
    kind: str
    route: str
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    error: type[BaseException] | None = None  # None: archived and verified
    message: tuple[str, ...] = ()  # substrings of str(error)
    billed: int = 1  # ledger entries for this row's prompt after the step
    submits: int | None = None  # submit requests the sandbox received during the step
    settle: bool = False  # the bill may land after the client gave up: wait for `billed`
    record: Record | None = None  # submission.json after the step
    resubmit: bool = False
    log: str | None = None  # a substring of the `runninghub` client log during the step


@dataclass(frozen=True)
class Row:
    id: str
    faults: tuple[Fault, ...]
    steps: tuple[Step, ...] = (Step(),)
    env: dict[str, str] = field(default_factory=dict)


OK = Step(record="task")

ROWS = [
    # --- upload: every failure is retried by the client; the submit happens once
    Row("upload-5xx-html", (Fault("http_500_html", "upload"),), (Step(submits=1),)),
    Row("upload-reset", (Fault("reset", "upload"),), (Step(submits=1),)),
    Row(
        "upload-429-retry-after",
        (Fault("http_429", "upload", params={"retry_after": 1}),),
        (Step(submits=1),),
    ),
    Row("upload-808", (Fault("error_code", "upload", params={"code": "808"}),), (OK,)),
    # --- submit: retried only where RunningHub surely created nothing
    Row(
        "submit-429", (Fault("http_429", "submit", params={"retry_after": 1}),), (Step(submits=2),)
    ),
    Row(
        "submit-1003", (Fault("error_code", "submit", params={"code": "1003"}),), (Step(submits=2),)
    ),
    Row(
        "submit-1520-once",
        (Fault("error_code", "submit", params={"code": "1520"}),),
        (Step(submits=2),),
    ),
    Row(
        "submit-1520-twice",
        (Fault("error_code", "submit", times=2, params={"code": "1520"}),),
        (Step(submits=3),),
    ),
    Row(
        "submit-reset",  # cut before the task exists: nothing billed, but we can't know that
        (Fault("reset", "submit"),),
        (
            Step(
                SubmitOutcomeUnknownError,
                ("answer was lost",),
                billed=0,
                submits=1,
                record="intent",
            ),
            Step(UnresolvedSubmissionError, ("may exist and be billed",), billed=0, submits=0),
        ),
    ),
    Row(
        "submit-lost-response",  # the task exists and is billed; only its answer is gone
        (Fault("lost_response", "submit"),),
        (
            Step(
                SubmitOutcomeUnknownError,
                ("answer was lost",),
                billed=1,
                submits=1,
                record="intent",
            ),
            Step(UnresolvedSubmissionError, ("--resubmit",), billed=1, submits=0, record="intent"),
            Step(billed=2, submits=1, record="task", resubmit=True),  # the user asked
        ),
    ),
    Row(
        "submit-5xx-html",
        (Fault("http_500_html", "submit"),),
        (Step(SubmitOutcomeUnknownError, ("HTTP 500",), billed=0, submits=1, record="intent"),),
    ),
    Row(
        "submit-read-timeout",  # the answer comes after our timeout: the task exists and is billed
        (Fault("slow", "submit", params={"seconds": 3}),),
        (
            Step(
                SubmitOutcomeUnknownError, ("ReadTimeout",), submits=1, record="intent", settle=True
            ),
            Step(UnresolvedSubmissionError, ("may exist and be billed",), submits=0),
        ),
        env={"RH_EXTEND_HTTP_TIMEOUT_S": "1"},
    ),
    Row(
        "submit-1007",  # refused outright: released, so fixing the cause and rerunning works
        (Fault("error_code", "submit", params={"code": "1007", "message": "duration: bad"}),),
        (
            Step(InvalidRequestError, ("code 1007",), billed=0, submits=1, record="absent"),
            Step(billed=1, submits=1, record="task"),  # the rule fired once: it is spent
        ),
    ),
    # --- query: the poll tolerates transient trouble
    Row("query-5xx-html", (Fault("http_500_html", "query"),)),
    Row("query-reset", (Fault("reset", "query"),)),
    Row("query-429", (Fault("http_429", "query", params={"retry_after": 1}),)),
    Row("query-1003", (Fault("error_code", "query", params={"code": "1003"}),)),
    Row("query-non-json", (Fault("non_json", "query"),)),
    Row(
        "query-error-while-running",
        (Fault("error_while_running", "task", params={"code": "1011", "message": "upstream"}),),
        (Step(TaskFailedError, ("code 1011", TASK_ID), billed=1, record="task"),),
    ),
    Row(
        "query-fail-task",  # and a rerun resumes the recorded task: same cause, no new submit
        (Fault("fail_task", "task", params={"code": "1015", "message": "the GPU melted"}),),
        (
            Step(TaskFailedError, ("code 1015", "the GPU melted", TASK_ID), submits=1),
            Step(TaskFailedError, ("code 1015", "the GPU melted", TASK_ID), submits=0),
        ),
    ),
    # --- download
    Row(
        "download-truncated",
        (Fault("truncate_download", "download", params={"bytes": 20_000}),),
        (Step(log="1 resume(s)"),),
    ),
    Row(
        "download-expired",  # and a rerun resumes the recorded task for its link: no new submit
        (Fault("expire_urls", "download"),),
        (
            Step(LinkExpiredError, ("expired",), billed=1, submits=1, record="task"),
            Step(billed=1, submits=0),
        ),
    ),
    Row("download-5xx-html", (Fault("http_500_html", "download"),)),
    # --- a task that outlives the poll deadline
    Row(
        "slow-task",
        (Fault("slow", "task", params={"seconds": 30}),),
        (Step(PollTimeoutError, (TASK_ID,), billed=1, submits=1),),
        env={"RH_EXTEND_POLL_TIMEOUT_S": "1.5"},
    ),
]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # the client's first back-off is 1 s (+ jitter) by default; these rows only need it > 0
    monkeypatch.setenv("RH_EXTEND_RETRY_INITIAL_S", "0.05")


def _prompt(row: Row) -> str:
    return f"fault matrix <{row.id}>"


def _billed(sandbox: Any, prompt: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.ledger() if e["body"].get("prompt") == prompt]


def _sha256_of_object(stack: LocalServers, uri: str) -> str:
    bucket, key = parse_s3_uri(uri)
    body = stack.s3().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _json_object(stack: LocalServers, uri: str) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    data: dict[str, Any] = json.loads(stack.s3().get_object(Bucket=bucket, Key=key)["Body"].read())
    return data


def _record_state(archive: Archive, key: str) -> Record:
    record = archive.read_json(key, "submission.json")
    if record is None:
        return "absent"
    return "task" if record.get("task_id") else "intent"


def _check_archived(result: Any, stack: LocalServers, billed: list[dict[str, Any]]) -> None:
    assert result.status == "succeeded"
    assert result.output_uri and result.manifest_uri
    manifest = _json_object(stack, result.manifest_uri)
    # the bytes in S3, downloaded and hashed here, are the bytes the manifest vouches for
    assert _sha256_of_object(stack, result.output_uri) == manifest["output"]["sha256"]
    assert manifest["output"]["sha256"] == result.output_sha256
    assert manifest["task_id"] == result.task_id == billed[-1]["taskId"]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fault(
    row: Row,
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in row.env.items():
        monkeypatch.setenv(name, value)
    prompt = _prompt(row)
    for fault in row.faults:
        match = {} if fault.route == "upload" else {"prompt_contains": f"<{row.id}>"}
        sandbox.add_fault(fault.kind, fault.route, fault.times, match, fault.params)
    params = get_model(MODEL).normalize({"prompt": prompt, "duration": DURATION})
    key = request_key(hashlib.sha256(clip.read_bytes()).hexdigest(), MODEL, params)
    archive = Archive(stack.bucket, s3_prefix, client=stack.s3())

    for number, step in enumerate(row.steps, 1):
        where = f"{row.id} step {number}"
        before = sandbox.submits_received
        caplog.clear()
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="runninghub"):
            try:
                result = extend_video(
                    ExtendRequest(source=str(clip), model=MODEL, prompt=prompt, duration=DURATION),
                    resubmit=step.resubmit,
                )
                error: BaseException | None = None
            except Exception as exc:  # the class is checked below
                result, error = None, exc
        elapsed = time.monotonic() - started
        billed = _billed(sandbox, prompt)
        deadline = time.monotonic() + 10
        while step.settle and len(billed) < step.billed and time.monotonic() < deadline:
            time.sleep(0.1)
            billed = _billed(sandbox, prompt)
        print(f"{where}: {type(error).__name__ if error else 'archived'} in {elapsed:.1f} s")

        if step.error is None:
            assert error is None, f"{where}: expected success, got {type(error).__name__}: {error}"
            _check_archived(result, stack, billed)
        else:
            assert type(error) is step.error, f"{where}: got {type(error).__name__}: {error}"
            text = str(error)
            task_id = billed[-1]["taskId"] if billed else "<none billed>"
            for words in step.message:
                wanted = task_id if words == TASK_ID else words
                assert wanted in text, f"{where}: {wanted!r} not in {text!r}"
        assert len(billed) == step.billed, f"{where}: billed {len(billed)}"
        if step.submits is not None:
            sent = sandbox.submits_received - before
            assert sent == step.submits, f"{where}: {sent} submit request(s)"
        if step.record is not None:
            assert _record_state(archive, key) == step.record, where
        if step.log is not None:
            assert step.log in caplog.text, f"{where}: {step.log!r} not logged"

    for rule in sandbox.faults():
        assert rule["hits"] >= 1, f"{row.id}: fault {rule['kind']}/{rule['route']} never fired"
        if rule["times"] is not None:
            assert rule["hits"] == rule["times"], rule
