"""No servers: deployment definitions vs prefect.yaml, manifests, inbox claims, receiver rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from rh_extend.batch_items import Defaults, Inbox, parse_manifest
from rh_extend.deployments.definitions import (
    GIT_BRANCH_VAR,
    GIT_REPOSITORY_VAR,
    VIDEO_ARRIVED,
    by_name,
    check_prefect_yaml,
    deployments,
    git_pull_steps,
    prefect_yaml,
    runtime_requirements,
    write_prefect_yaml,
)
from rh_extend.flows.batch.outcomes import BatchSummary, ItemOutcome, check_item, item_key
from rh_extend.local_servers import LocalServers
from rh_extend.receiver import BadRequest, ReceiverSettings, create_app, parse_webhook
from runninghub import InputValidationError

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- definitions


def test_prefect_yaml_is_generated_from_the_definitions() -> None:
    assert check_prefect_yaml(ROOT / "prefect.yaml") == []
    on_disk = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    local = yaml.safe_load((ROOT / "prefect.local.yaml").read_text())
    assert on_disk == prefect_yaml() and local == prefect_yaml(local=True)
    assert on_disk["deployments"] == local["deployments"]  # they differ in `pull` only
    assert [d["name"] for d in on_disk["deployments"]] == [
        "extend-video",
        "extend-inbox",
        "extend-batch",
        "collect-orphans",
    ]
    assert all(d["work_pool"]["name"] == "video-extend" for d in on_disk["deployments"])
    assert on_disk["pull"] == git_pull_steps() and local["pull"] is None
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if not line.startswith("#")] == runtime_requirements(
        ROOT / "pyproject.toml"
    )
    assert "prefect==3.8.8" in requirements


def test_a_changed_definition_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    path = tmp_path / "prefect.yaml"
    write_prefect_yaml(path)
    assert check_prefect_yaml(path) == []
    edited = prefect_yaml()
    edited["deployments"][1]["schedules"][0]["cron"] = "0 * * * *"
    path.write_text(yaml.safe_dump(edited))
    with (tmp_path / "requirements.txt").open("a") as requirements:
        requirements.write("requests\n")
    (tmp_path / "prefect.local.yaml").unlink()
    assert check_prefect_yaml(path) == [
        "prefect.yaml: deployment 'extend-inbox' differs from the definitions",
        f"{tmp_path / 'prefect.local.yaml'} does not exist",
        "requirements.txt differs from pyproject.toml's dependencies",
    ]


def test_pull_reads_the_repository_at_deploy_time_or_else_on_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `prefect deploy` (apply_values(..., remove_notset=False)) and then a worker's
    run_step (apply_values(inputs, os.environ)) make of the git_clone step in Prefect 3.8.8."""
    import os

    from prefect.utilities.templating import apply_values

    monkeypatch.setenv(GIT_REPOSITORY_VAR, "https://git.example.com/rh-extend.git")
    monkeypatch.delenv(GIT_BRANCH_VAR, raising=False)
    deployed = apply_values(git_pull_steps(), {}, remove_notset=False)
    clone = deployed[0]["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == "https://git.example.com/rh-extend.git"
    assert clone["branch"] == "{{ $RH_EXTEND_GIT_BRANCH }}"  # left for the worker
    install = deployed[1]["prefect.deployments.steps.pip_install_requirements"]
    assert install["directory"] == "{{ clone.directory }}"  # the clone step's output, at run time

    monkeypatch.setenv(GIT_REPOSITORY_VAR, "file:///elsewhere.git")  # the worker's: too late
    monkeypatch.setenv(GIT_BRANCH_VAR, "release-1")
    on_worker = apply_values(clone, dict(os.environ))
    assert on_worker["repository"] == "https://git.example.com/rh-extend.git"
    assert on_worker["branch"] == "release-1"
    monkeypatch.delenv(GIT_BRANCH_VAR)
    assert apply_values(clone, dict(os.environ))["branch"] == ""  # the default branch


def test_served_deployments_match_the_yaml() -> None:
    from rh_extend.deployments.serve import parse_overrides, runner_deployments

    served = {d.name: d for d in runner_deployments()}
    for entry in prefect_yaml()["deployments"]:
        runner = served[entry["name"]]
        assert runner.parameters == entry["parameters"]
        # Prefect writes a module-path entrypoint with dots only ("package.module.flow").
        module_path = by_name(entry["name"]).module_entrypoint.replace(":", ".")
        assert runner.entrypoint == module_path
        path, _, flow_name = entry["entrypoint"].partition(":")
        assert (ROOT / path).is_file() and runner.entrypoint.endswith(f".{flow_name}")
        crons = [s.schedule.cron for s in runner.schedules or []]
        assert crons == [s["cron"] for s in entry["schedules"]]
        triggers = [t.model_dump(mode="json") for t in runner.triggers]
        for trigger, wanted in zip(triggers, entry.get("triggers", []), strict=True):
            assert trigger["expect"] == wanted["expect"] == [VIDEO_ARRIVED]
            assert trigger["parameters"] == wanted["parameters"]
            assert trigger["match"] == wanted["match"]
    overridden = runner_deployments(
        ["extend-inbox"], 5, parse_overrides(["extend-inbox.settle_s=0"])
    )
    assert overridden[0].parameters["settle_s"] == 0
    assert overridden[0].schedules[0].schedule.interval.total_seconds() == 5


def test_prefect_yaml_entrypoints_load_from_their_files() -> None:
    """`prefect deploy` loads each flow from its file, not from the package: the same flow."""
    import importlib

    from prefect.flows import load_flow_from_entrypoint

    for entry in prefect_yaml()["deployments"]:
        from_file = load_flow_from_entrypoint(str(ROOT / entry["entrypoint"]))
        module, _, name = by_name(entry["name"]).module_entrypoint.partition(":")
        assert from_file.name == getattr(importlib.import_module(module), name).name


def test_batch_names_still_import_from_the_flow_module() -> None:
    from rh_extend.flows import extend_batch

    assert (extend_batch.BatchSummary, extend_batch.ItemOutcome) == (BatchSummary, ItemOutcome)
    assert (extend_batch.check_item, extend_batch.item_key) == (check_item, item_key)


def test_trigger_maps_every_request_field_and_not_resubmit() -> None:
    import inspect

    from rh_extend.flows.extend_video import extend_video
    from rh_extend.request import ExtendRequest

    video = next(d for d in deployments() if d.name == "extend-video")
    parameters = video.triggers[0]["parameters"]
    assert set(inspect.signature(extend_video.fn).parameters) == {"request", "resubmit"}
    assert set(parameters) == {"request"}  # resubmit (pay again) never comes from an event
    assert set(parameters["request"]) == set(ExtendRequest.model_fields)


# ----------------------------------------------------------------------------- manifests

DEFAULTS = Defaults(model="skyreels-v3-shot-switching", prompt="default", params={"duration": 2})


def test_csv_manifest_with_parameter_columns_and_defaults() -> None:
    text = (
        "source,model,prompt,params,duration,cut_type\n"
        "a.mp4,,hello,,3,Cut-In\n"
        '# a comment\nb.mp4,wan-2.7,,"{""resolution"": ""720P""}",,\n'
        ",,,,,\n"
    )
    items = parse_manifest(text, "m.csv", DEFAULTS)
    assert [i.source for i in items] == ["a.mp4", "b.mp4"]
    a, b = items
    assert (a.model, a.prompt, a.params) == (
        "skyreels-v3-shot-switching",
        "hello",
        {"duration": 3, "cut_type": "Cut-In"},
    )
    assert (b.model, b.prompt, b.params) == (
        "wan-2.7",
        "default",
        {"duration": 2, "resolution": "720P"},
    )


def test_jsonl_manifest_keeps_going_past_a_bad_line() -> None:
    text = '{"source": "a.mp4"}\nnot json\n{"prompt": "no source"}\n\n{"source": "b.mp4"}\n'
    items = parse_manifest(text, "m.jsonl", DEFAULTS)
    assert [i.problem is None for i in items] == [True, False, False, True]
    assert "m.jsonl:2" in str(items[1].problem)
    assert "source is missing" in str(items[2].problem)


def test_items_are_checked_before_anything_runs() -> None:
    items = parse_manifest(
        '{"source": "a.mp4", "params": {"duration": 99}}\n'
        '{"source": "a.mp4", "params": {"durration": 2}}\n'
        '{"source": "a.mp4", "model": ""}\n',
        "m.jsonl",
        Defaults(prompt="p"),
    )
    for item in items:
        with pytest.raises((InputValidationError, ValueError)):
            check_item(item)
    same = parse_manifest('{"source": "a.mp4"}\n{"source": "a.mp4", "params": {}}', "x", DEFAULTS)
    assert item_key(same[0]) == item_key(same[1])  # the batch runs it once


def test_summary_final_state_rule() -> None:
    def outcome(status: Any) -> ItemOutcome:
        return ItemOutcome(label="x", source="s", status=status)

    mixed = BatchSummary(source="m", failed=2, archived=1, items=[outcome("failed")])
    assert not mixed.all_failed
    assert BatchSummary(source="m", failed=2).all_failed
    assert not BatchSummary(source="m", in_progress=1).all_failed
    assert not BatchSummary(source="m").all_failed


# ---------------------------------------------------------------------------------- inbox


@pytest.fixture
def inbox(stack: LocalServers, request: pytest.FixtureRequest) -> Inbox:
    prefix = "unit-inbox/" + request.node.name[:40] + "/"
    return Inbox(f"s3://{stack.bucket}/{prefix}", stack.s3())


def _put(box: Inbox, name: str, body: bytes = b"video") -> None:
    box.s3.put_object(Bucket=box.bucket, Key=box.prefix + name, Body=body)


def test_racing_ticks_claim_each_video_once(inbox: Inbox, stack: LocalServers) -> None:
    for n in range(4):
        _put(inbox, f"clip-{n}.mp4")
    _put(inbox, "notes.txt")
    # tick A lists the inbox, then tick B runs whole before A writes any claim
    slow = Inbox(inbox.uri, stack.s3())
    listing = slow._objects()
    slow._objects = lambda: listing  # type: ignore[method-assign]
    b = inbox.scan(DEFAULTS, claimed_by="tick-b")
    a = slow.scan(DEFAULTS, claimed_by="tick-a")
    assert [i.label for i in b.items] == [f"clip-{n}.mp4" for n in range(4)]
    assert a.items == [] and a.already_claimed == 4  # every create-only claim lost
    later = inbox.scan(DEFAULTS, claimed_by="later")
    assert later.items == [] and later.already_claimed == 4


def test_sidecar_settling_finishing_and_reclaiming(inbox: Inbox) -> None:
    _put(inbox, "a.mov")
    _put(
        inbox,
        "a.json",
        json.dumps({"model": "wan-2.7", "prompt": "p", "params": {"seed": 1}}).encode(),
    )
    _put(inbox, "b.mp4")
    _put(inbox, "b.json", b"[1, 2]")
    assert inbox.scan(DEFAULTS, claimed_by="t", settle_s=3600).settling == 2
    scan = inbox.scan(DEFAULTS, claimed_by="t")
    a, b = scan.items
    assert (a.model, a.prompt, a.params) == ("wan-2.7", "p", {"duration": 2, "seed": 1})
    assert b.problem and "sidecar" in b.problem
    assert inbox.finish(a, {"status": "archived", "output_uri": "s3://x/y"})
    doc = json.loads(inbox.s3.get_object(Bucket=inbox.bucket, Key=str(a.claim_key))["Body"].read())
    assert doc["state"] == "done" and doc["outcome"]["output_uri"] == "s3://x/y"
    # b's run "died": its claim stays `claimed`; a later tick may take it over, only once
    assert inbox.scan(DEFAULTS, claimed_by="t2", reclaim_after_s=3600).items == []
    retaken = inbox.scan(DEFAULTS, claimed_by="t2", reclaim_after_s=0).items
    assert [i.label for i in retaken] == ["b.mp4"]
    assert inbox.scan(DEFAULTS, claimed_by="t3", reclaim_after_s=3600).items == []
    assert not inbox.finish(b, {"status": "failed"})  # the old run lost its claim: no overwrite
    assert inbox.finish(retaken[0], {"status": "failed", "cause": "bad sidecar"})


# ------------------------------------------------------------------------------- receiver


def test_webhook_event_data_is_parsed_twice() -> None:
    inner = json.dumps({"taskId": "123", "status": "SUCCESS"})
    once = json.dumps({"event": "TASK_END", "taskId": "123", "eventData": inner}).encode()
    twice = json.dumps({"event": "TASK_END", "taskId": "123", "eventData": json.dumps(inner)})
    assert parse_webhook(once) == ("123", {"taskId": "123", "status": "SUCCESS"})
    assert parse_webhook(twice.encode())[1]["status"] == "SUCCESS"
    other = json.dumps({"event": "TASK_END", "taskId": "123", "eventData": '{"taskId": "9"}'})
    with pytest.raises(BadRequest, match="does not match"):
        parse_webhook(other.encode())
    with pytest.raises(BadRequest, match="digits"):
        parse_webhook(b'{"event": "TASK_END", "taskId": "abc"}')


class FakeTask:
    def __init__(self, status: str) -> None:
        from runninghub import TaskResponse

        body: dict[str, Any] = {"taskId": "42", "status": status}
        if status == "SUCCESS":
            body["results"] = [{"url": "https://x/out.mp4", "outputType": "mp4"}]
        self.answer = TaskResponse.model_validate(body)

    def __call__(self, task_id: str) -> Any:
        return self.answer


def _app(sink: Any, lookup: Any) -> TestClient:
    settings = ReceiverSettings(secret="s" * 20)
    return TestClient(create_app(settings, sink=sink, lookup=lookup))


def test_receiver_emits_nothing_for_rejected_or_unfinished_requests() -> None:
    sent: list[dict[str, Any]] = []
    healthy = True

    async def sink(events: list[dict[str, Any]]) -> None:
        if not healthy:
            raise ConnectionError("prefect is down")
        sent.extend(events)

    lookup = FakeTask("RUNNING")
    client = _app(sink, lookup)
    hook = {"event": "TASK_END", "taskId": "42", "eventData": "{}"}
    assert client.post("/runninghub/webhook", json=hook).status_code == 409  # not finished yet
    lookup.answer = FakeTask("SUCCESS").answer
    healthy = False
    assert client.post("/runninghub/webhook", json=hook).status_code == 503  # retry later
    healthy = True
    assert client.post("/runninghub/webhook", json=hook).status_code == 202
    assert client.post("/runninghub/webhook", json=hook).json()["status"] == "duplicate"
    assert [e["event"] for e in sent] == ["rh-extend.runninghub.task-end"]

    arrival = {"source": "s3://b/k.mp4", "model": "wan-2.7", "params": {"duration": 8}}
    assert client.post("/videos", json=arrival).status_code == 401
    wrong = {"Authorization": "Bearer " + "t" * 20}
    assert client.post("/videos", json=arrival, headers=wrong).status_code == 401
    good = {"Authorization": "Bearer " + "s" * 20}
    assert client.post("/videos", json={**arrival, "extra": 1}, headers=good).status_code == 422
    assert client.post("/videos", content=b"x" * 70_000, headers=good).status_code == 413
    assert len(sent) == 1
    first = client.post("/videos", json=arrival, headers=good)
    second = client.post("/videos", json={**arrival, "id": "my-retry-2"}, headers=good)
    assert first.status_code == second.status_code == 202
    assert first.json()["event_id"] != second.json()["event_id"]
    payload = sent[1]["payload"]
    assert payload["params"]["duration"] == 8 and payload["params"]["seed"] is None
    assert payload["prompt"] is None and sent[1]["event"] == VIDEO_ARRIVED
    assert sent[1]["resource"]["prefect.resource.id"].startswith("rh-extend.video.")


def test_receiver_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(ValueError, match="RH_EXTEND_RECEIVER_SECRET"):
        create_app(ReceiverSettings(secret=None))
