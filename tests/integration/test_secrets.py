"""The RunningHub API key never reaches Prefect: not in any record its API returns, whether the
run succeeds or fails, and not in the exceptions the flow raises.

Runs that succeed and runs that fail (a failed task whose reason echoes the key, a lost submit
answer, a server error message echoing the key, a wrong key), then reads back every record the
Prefect API holds (all of them, not only this test's) and searches the JSON for the keys and
their first 12 characters. Twice: with the key in the environment, and with the key in a Prefect
Secret block and S3's credentials in an AwsCredentials block, the environment holding neither.
Secret blocks are the one place the keys may be.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter

from rh_extend.flows.extend_video import extend_video
from rh_extend.local_servers import LOCAL_API_KEY, LocalServers
from rh_extend.request import ExtendRequest
from runninghub import AuthenticationError, SubmitOutcomeUnknownError, TaskFailedError

pytestmark = pytest.mark.usefixtures("prefect_api")

KEY = LOCAL_API_KEY  # "sk-sandbox-0000000000000000", the key the sandbox accepts
WRONG_KEY = "sk-wrong-KEY-9999999999"
SECRETS = (KEY, KEY[:12], WRONG_KEY, WRONG_KEY[:12])
MODEL = "skyreels-v3-shot-switching"
PAGE = 200
KEY_BLOCKS = {KEY: "rh-extend-test-key", WRONG_KEY: "rh-extend-test-wrong-key"}
AWS_BLOCK = "rh-extend-test-aws"
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
)


def _leaks(text: str) -> list[str]:
    """Each secret (or prefix) found in `text`, with some context around its first hit."""
    found = []
    for secret in SECRETS:
        at = text.find(secret)
        if at >= 0:
            found.append(f"{secret!r} in …{text[max(0, at - 120) : at + 80]}…")
    return found


def _dump(record: Any) -> str:
    if hasattr(record, "model_dump"):
        record = record.model_dump(mode="json")
    return json.dumps(record, default=str)


async def _paged(read: Callable[[int, int], Awaitable[Sequence[Any]]]) -> list[Any]:
    records: list[Any] = []
    while True:
        page = await read(PAGE, len(records))
        records.extend(page)
        if len(page) < PAGE:
            return records


async def _all_records(client: PrefectClient, run_ids: list[UUID]) -> dict[str, list[Any]]:
    """Every record kind the API serves, by kind; states of this test's runs in full."""
    flow_runs = await _paged(lambda n, o: client.read_flow_runs(limit=n, offset=o))
    task_runs = await _paged(lambda n, o: client.read_task_runs(limit=n, offset=o))
    ours = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
    our_task_runs = await client.read_task_runs(flow_run_filter=ours)
    events = []
    page = await client.read_events(limit=50)
    events.extend(page.events)
    while page.next_page:
        page = await client.read_events_page(page.next_page)
        events.extend(page.events)
    return {
        "flow": await _paged(lambda n, o: client.read_flows(limit=n, offset=o)),
        "flow run": flow_runs,
        "flow run state": [s for r in flow_runs for s in await client.read_flow_run_states(r.id)],
        "task run": task_runs,
        "task run state": [
            s for r in our_task_runs for s in await client.read_task_run_states(r.id)
        ],
        "log": await _paged(lambda n, o: client.read_logs(limit=n, offset=o)),
        "artifact": await _paged(lambda n, o: client.read_artifacts(limit=n, offset=o)),
        "event": events,
        "variable": await client.read_variables(),
        "block document": [
            document
            for document in await client.read_block_documents(include_secrets=True)
            # Secret blocks are where a key is meant to be (this test's, and other tests')
            if document.block_type_name != "Secret"
        ],
        "deployment": await _paged(lambda n, o: client.read_deployments(limit=n, offset=o)),
        "work pool": await client.read_work_pools(),
        "concurrency limit": await client.read_concurrency_limits(limit=PAGE, offset=0),
        "global concurrency limit": await client.read_global_concurrency_limits(limit=PAGE),
        "automation": await client.read_automations(),
    }


async def _wait_until_recorded(client: PrefectClient, run_ids: list[UUID]) -> None:
    """Logs and events reach the API in batches after a run ends: wait for this test's."""
    deadline = time.monotonic() + 60
    wanted = {f"prefect.flow-run.{run_id}" for run_id in run_ids}
    while True:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id={"any_": run_ids}), limit=PAGE
        )
        logged = {log.flow_run_id for log in logs}
        page = await client.read_events(limit=50)
        seen = {event.resource.id for event in page.events}
        while page.next_page and not wanted <= seen:
            page = await client.read_events_page(page.next_page)
            seen |= {event.resource.id for event in page.events}
        if logged >= set(run_ids) and wanted <= seen:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"Prefect has logs of {logged} and events of {seen & wanted} only")
        await asyncio.sleep(0.5)


def _run(expected: type[BaseException] | None, **params: Any) -> tuple[UUID, BaseException | None]:
    """One extend_video run in the harness; its flow run id and what it raised."""
    state = extend_video(
        ExtendRequest(source=params.pop("source"), model=MODEL, **params), return_state=True
    )
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    if expected is None:
        assert state.is_completed(), state.message
        return run_id, None
    with pytest.raises(expected) as raised:
        state.result()
    return run_id, raised.value


def _key_from_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def use(key: str) -> None:
        monkeypatch.setenv("RUNNINGHUB_API_KEY", key)

    return use


def _keys_from_blocks(
    monkeypatch: pytest.MonkeyPatch, stack: LocalServers
) -> Callable[[str], None]:
    """The keys in Secret blocks, S3's credentials and endpoint in an AwsCredentials block; the
    environment without RUNNINGHUB_API_KEY or any AWS_* variable."""
    from prefect.blocks.system import Secret
    from prefect_aws import AwsClientParameters, AwsCredentials

    for key, name in KEY_BLOCKS.items():
        Secret(value=key).save(name, overwrite=True)
    AwsCredentials(
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=stack.s3_endpoint),
    ).save(AWS_BLOCK, overwrite=True)
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RH_EXTEND_AWS_CREDENTIALS_BLOCK", AWS_BLOCK)

    def use(key: str) -> None:
        monkeypatch.setenv("RH_EXTEND_RUNNINGHUB_KEY_BLOCK", KEY_BLOCKS[key])

    return use


@pytest.mark.parametrize("key_source", ["environment", "blocks"])
def test_api_key_is_in_no_prefect_record_and_no_exception(
    key_source: str,
    clip: Path,
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if key_source == "blocks":
        use_key = _keys_from_blocks(monkeypatch, stack)
    else:
        use_key = _key_from_environment(monkeypatch)
    use_key(KEY)
    runs: dict[str, tuple[UUID, BaseException | None]] = {}

    runs["succeeds"] = _run(None, source=str(clip), prompt="secret ok", duration=2)

    sandbox.add_fault(
        "fail_task",
        route="task",
        match={"prompt_contains": "secret fails"},
        params={"code": "1015", "message": f"generation failed for key {KEY}"},
    )
    runs["task fails (reason echoes key)"] = _run(
        TaskFailedError, source=str(clip), prompt="secret fails", duration=2
    )

    sandbox.add_fault("lost_response", route="submit", match={"prompt_contains": "secret lost"})
    runs["submit answer lost"] = _run(
        SubmitOutcomeUnknownError, source=str(clip), prompt="secret lost", duration=2
    )

    sandbox.add_fault(
        "error_code",
        route="submit",
        match={"prompt_contains": "secret echo"},
        params={"code": "1002", "message": f"invalid api key {KEY}"},
    )
    runs["submit refused (message echoes key)"] = _run(
        AuthenticationError, source=str(clip), prompt="secret echo", duration=2
    )

    use_key(WRONG_KEY)
    runs["wrong key"] = _run(AuthenticationError, source=str(clip), prompt="secret key", duration=2)

    assert len(sandbox.ledger()) == 3  # succeeds, fails, lost: the runs really reached RunningHub
    archived = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=f"{s3_prefix}/")
    assert archived.get("KeyCount", 0) > 0  # and S3, through the block on the block path

    for name, (_, exc) in runs.items():
        if exc is not None:
            text = "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])
            assert not _leaks(text), f"{name}: the exception shows the key: {_leaks(text)}"

    run_ids = [run_id for run_id, _ in runs.values()]

    async def read() -> dict[str, list[Any]]:
        async with get_client() as client:
            await _wait_until_recorded(client, run_ids)
            return await _all_records(client, run_ids)

    records = asyncio.run(read())
    records["result file"] = [path.read_bytes().decode("latin-1") for path in _stored_files()]

    assert {run.id for run in records["flow run"]} >= set(run_ids)
    assert {log.flow_run_id for log in records["log"]} >= set(run_ids)
    assert len(records["task run state"]) > len(run_ids)
    leaks = [
        f"{kind}: {leak}"
        for kind, items in records.items()
        for item in items
        for leak in _leaks(_dump(item))
    ]
    assert not leaks, "\n".join(leaks)


def _stored_files() -> list[Path]:
    """Prefect's local result storage (results are not persisted by default, but if they are,
    a pickled exception lands here)."""
    from prefect.settings import get_current_settings

    root = Path(get_current_settings().results.local_storage_path)
    return [path for path in root.rglob("*") if path.is_file()] if root.is_dir() else []
