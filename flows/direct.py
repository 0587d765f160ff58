"""Runs started in this process (the CLI, a batch's items, a library call), as cheaply as Prefect
lets them start and end.

Tags at creation: `model:<id>` is set when the run is created, so `observe.tag_run` (which adds it
to runs a deployment or trigger started) has nothing to patch.

Heartbeats only where they can help: runs created from a deployment.

One Prefect API client for them all: Prefect builds a client per flow run it starts, and each new
client loads certifi's CA bundle into a TLS context (≈ 30 ms of CPU here, even for an http://
API), fetches a CSRF token and opens its connections again. Runs this process starts share one
client instead, opened at the first run and kept until the process ends.

Prefect 3.8.8 beats every flow run from a thread that sleeps in one-second steps and is joined
when the run ends, so each run's end waits up to 1 s (0.45 s on average, measured: see
docs/benchmarks.md, P2). Heartbeats serve zombie detection of runs that a worker or `serve`
started. A run started in this process — `rh-extend extend`, `rh-extend batch`, a batch's
subflows, a library call — gains nothing from them: its subflows live and die with their parent,
and a foreground command's death is seen by whoever started it. Those runs go without.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import tags
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import SettingsContext, SyncClientContext, TagsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings

from rh_extend.prefect_internals import using_sync_client

_lock = threading.Lock()
_quiet: dict[int, tuple[Settings, Settings]] = {}  # id(settings) → (settings, without beats)
_clients: dict[str, SyncPrefectClient] = {}  # API URL → this process's client for it


def _without_beats(settings: Settings) -> Settings:
    # copy_with_update re-reads every settings source (≈ 45 ms of CPU): once per settings object
    with _lock:
        known = _quiet.get(id(settings))
        if known is None or known[0] is not settings:
            quiet = settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
            known = _quiet[id(settings)] = (settings, quiet)
        return known[1]


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started inside this block send no heartbeats (a context variable: per thread)."""
    context = get_settings_context()
    if context.settings.flows.heartbeat_frequency is None:
        yield
        return
    with SettingsContext(profile=context.profile, settings=_without_beats(context.settings)):
        yield


def _shared_client(api_url: str) -> SyncPrefectClient:
    with _lock:
        client = _clients.get(api_url)
        if client is None:
            # never closed: report writes and slot releases at exit may still use it
            client = _clients[api_url] = get_client(sync_client=True).__enter__()
            if get_settings_context().settings.client.server_version_check_enabled:
                client.raise_for_api_version_mismatch_once()
        return client


@contextmanager
def shared_api_client() -> Iterator[None]:
    """Flow runs started inside this block use this process's one client of the Prefect API.

    Not for an ephemeral API (no PREFECT_API_URL): Prefect stops that server with the run, and a
    client kept open would outlive it.
    """
    api_url = get_settings_context().settings.api.url
    if SyncClientContext.get() is not None or not api_url:
        yield
        return
    with using_sync_client(_shared_client(api_url)):
        yield


@contextmanager
def direct_runs() -> Iterator[None]:
    """How this process starts flow runs itself: no heartbeats, one API client."""
    with without_heartbeats(), shared_api_client():
        yield


@contextmanager
def direct_run(model: object) -> Iterator[None]:
    """How this process starts `extend_video` itself: no heartbeats, one API client, the model
    tag at creation."""
    from rh_extend.observe.hooks import model_tags

    with direct_runs(), tags(*model_tags(model)):
        yield


@contextmanager
def untagged_task_runs(model: object) -> Iterator[None]:
    """Inside a run `direct_run` tagged: its task runs without the model tag (the run keeps it).

    Prefect asks the API for the tag concurrency limits of every tagged task run it starts
    (cached 5 s). On SQLite that call often meets a locked database and is retried after
    ≈ 2 s: measured here, 2.5 s per video without the tag on task runs, 4.6 s with it (and
    once 67 s). The tag is for finding runs; task runs are found through their run.
    """
    from rh_extend.observe.hooks import model_tags

    with TagsContext(current_tags=TagsContext.get().current_tags - set(model_tags(model))):
        yield
