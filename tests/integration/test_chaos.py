"""Chaos: 30 concurrent extend runs, each hit by a random fault with probability 20 %.

Reproducible: the faults, models and durations come from `random.Random(SEED)`, printed with the
drawn faults and a summary table. After all runs: every run either archived a file whose bytes in
S3 hash to the manifest's sha256, or failed with the named exception its fault calls for; and the
sandbox billed each request (one prompt each) exactly as often as its fault implies, never twice.

Upload faults cannot be pinned to a run (an upload carries no prompt to match): they hit whichever
upload comes next. All of them are retried away, so every run's expected outcome still follows from
its own drawn fault; the table attributes an upload fault to the run that drew it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LocalServers
from rh_extend.request import ExtendRequest
from rh_extend.storage import parse_s3_uri
from runninghub import (
    InvalidRequestError,
    LinkExpiredError,
    PollTimeoutError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

SEED = 20261124
RUNS = 30
FAULT_RATE = 0.2
WORKERS = 4
MODELS = ("wan-2.7", "skyreels-v3-single-shot", "skyreels-v3-shot-switching")


@dataclass(frozen=True)
class Chaos:
    """A fault (`route`, `kind`, ...) and what it leads to: archived, or `error`; `billed` bills."""

    route: str
    kind: str
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)
    error: type[BaseException] | None = None
    billed: int = 1


FAULTS: dict[str, Chaos] = {
    "upload-5xx": Chaos("upload", "http_500_html"),
    "upload-reset": Chaos("upload", "reset"),
    "upload-429": Chaos("upload", "http_429", params={"retry_after": 1}),
    "upload-808": Chaos("upload", "error_code", params={"code": "808"}),
    "submit-429": Chaos("submit", "http_429", params={"retry_after": 1}),
    "submit-1003": Chaos("submit", "error_code", params={"code": "1003"}),
    "submit-1520": Chaos("submit", "error_code", params={"code": "1520"}),
    "submit-reset": Chaos("submit", "reset", error=SubmitOutcomeUnknownError, billed=0),
    "submit-lost": Chaos("submit", "lost_response", error=SubmitOutcomeUnknownError),
    "submit-5xx": Chaos("submit", "http_500_html", error=SubmitOutcomeUnknownError, billed=0),
    "submit-1007": Chaos(
        "submit", "error_code", params={"code": "1007"}, error=InvalidRequestError, billed=0
    ),
    "query-5xx": Chaos("query", "http_500_html"),
    "query-reset": Chaos("query", "reset"),
    "query-429": Chaos("query", "http_429", params={"retry_after": 1}),
    "query-1003": Chaos("query", "error_code", params={"code": "1003"}),
    "query-non-json": Chaos("query", "non_json"),
    "error-while-running": Chaos("task", "error_while_running", error=TaskFailedError),
    "fail-task": Chaos("task", "fail_task", error=TaskFailedError),
    "download-truncated": Chaos("download", "truncate_download", params={"bytes": 20_000}),
    "download-expired": Chaos("download", "expire_urls", times=None, error=LinkExpiredError),
    "download-5xx": Chaos("download", "http_500_html"),
    "slow-task": Chaos("task", "slow", params={"seconds": 600}, error=PollTimeoutError),
}


@dataclass
class Run:
    number: int
    model: str
    duration: int
    fault: str | None
    prompt: str = ""
    outcome: str = ""
    error: BaseException | None = None
    result: Any = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.prompt = f"chaos run <c{self.number:02d}>"

    def kwargs(self) -> dict[str, Any]:
        extra = {"resolution": "720P"} if self.model == "wan-2.7" else {}
        return {"model": self.model, "prompt": self.prompt, "duration": self.duration, **extra}


def _draw(rng: random.Random) -> list[Run]:
    runs = []
    names = sorted(FAULTS)
    for number in range(RUNS):
        model = MODELS[number % len(MODELS)]
        duration = {
            "wan-2.7": rng.choice([4, 5]),  # total length; the clip is 3 s
            "skyreels-v3-single-shot": 5,  # added, minimum 5
            "skyreels-v3-shot-switching": rng.choice([2, 3]),  # added
        }[model]
        fault = rng.choice(names) if rng.random() < FAULT_RATE else None
        runs.append(Run(number, model, duration, fault))
    return runs


def _sha256_of_object(stack: LocalServers, uri: str) -> str:
    bucket, key = parse_s3_uri(uri)
    body = stack.s3().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _manifest(stack: LocalServers, uri: str) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    data: dict[str, Any] = json.loads(stack.s3().get_object(Bucket=bucket, Key=key)["Body"].read())
    return data


def _named(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in ("runninghub", "rh_extend")


def test_chaos(
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RH_EXTEND_RETRY_INITIAL_S", "0.05")
    # well above a stalled SQLite Prefect server (up to 60 s), well below the slow-task fault
    monkeypatch.setenv("RH_EXTEND_POLL_TIMEOUT_S", "120")
    runs = _draw(random.Random(SEED))
    print(f"\nchaos seed {SEED}: {RUNS} runs, fault rate {FAULT_RATE:.0%}, {WORKERS} workers")
    for run in runs:
        if run.fault is not None:
            print(f"  run {run.number:02d} {run.model:28} fault {run.fault}")
            chaos = FAULTS[run.fault]
            match = {} if chaos.route == "upload" else {"prompt_contains": f"<c{run.number:02d}>"}
            sandbox.add_fault(chaos.kind, chaos.route, chaos.times, match, chaos.params)

    def execute(run: Run) -> Run:
        started = time.monotonic()
        try:
            run.result = extend_video(ExtendRequest(source=str(clip), **run.kwargs()))
            run.outcome = "archived"
        except Exception as exc:  # judged below: it must be the named cause the fault implies
            run.error, run.outcome = exc, type(exc).__name__
        run.seconds = time.monotonic() - started
        return run

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="chaos") as pool:
        list(pool.map(execute, runs))
    elapsed = time.monotonic() - started

    billed = Counter(entry["body"].get("prompt") for entry in sandbox.ledger())
    print(f"\n{'run':>3}  {'model':28} {'fault':20} {'outcome':27} billed  seconds")
    for run in runs:
        print(
            f"{run.number:>3}  {run.model:28} {run.fault or '-':20} {run.outcome:27} "
            f"{billed[run.prompt]:>6}  {run.seconds:7.1f}"
        )
    outcomes = Counter(run.outcome for run in runs)
    print(f"outcomes: {dict(outcomes)}; billed submits {sum(billed.values())}; {elapsed:.1f} s")

    problems = []
    for run in runs:
        chaos = FAULTS[run.fault] if run.fault else Chaos("-", "-")
        label = f"run {run.number:02d} ({run.model}, fault {run.fault})"
        if run.error is not None and not _named(run.error):
            problems.append(f"{label}: unnamed failure {type(run.error).__name__}: {run.error}")
        elif chaos.error is None and run.error is not None:
            problems.append(f"{label}: expected archived, got {run.outcome}: {run.error}")
        elif chaos.error is not None and type(run.error) is not chaos.error:
            problems.append(f"{label}: expected {chaos.error.__name__}, got {run.outcome}")
        if billed[run.prompt] != chaos.billed:
            problems.append(f"{label}: billed {billed[run.prompt]}, expected {chaos.billed}")
        if run.result is not None:
            manifest = _manifest(stack, run.result.manifest_uri)
            if _sha256_of_object(stack, run.result.output_uri) != manifest["output"]["sha256"]:
                problems.append(f"{label}: archived bytes differ from the manifest's sha256")
            if manifest["request"]["params"].get("prompt") != run.prompt:
                problems.append(f"{label}: archived under another request")
    assert not problems, "\n".join(problems)
    assert max(billed.values()) <= 1, billed  # nobody asked for a resubmit: never paid twice
    for rule in sandbox.faults():
        assert rule["hits"] >= 1, f"fault never fired: {rule}"
