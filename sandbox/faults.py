"""Fault injection: an ordered list of rules, each hitting up to `times` matching requests.

A rule: {"kind", "route", "times" (int >= 1, or null = always), "match" (optional), "params"}.

Routes: the client-facing routes "upload", "submit", "query", "download", "account", "queue",
"price", "cancel"; "any" (= every client-facing route); "task" (applied once to a task when a
submit is accepted); "fetch" (the sandbox's own download of a task's `videoUrl`, wherever it
points). Download-route rules never hit the sandbox's own fetches: use route "fetch" for those.

Kinds and where they apply (params and their defaults in brackets):
  http_500_html      request: HTTP params.status [500] with an nginx-style HTML body
  reset              request: the connection is closed without any response
  http_429           request: HTTP 429 with Retry-After: params.retry_after [1]
  error_code         request: HTTP 200 carrying params.code ["1011"] and params.message, in the
                     route's own shape: v2 task body with taskId/status null (submit, query),
                     {"code", "message"} (upload, download), {"code", "msg", "data"} (others)
  non_json           request: HTTP params.status [200] with an HTML page (params.page [502])
  slow               request: wait params.seconds [1.0] (wall clock) before answering;
                     route "task": the task's RUNNING phase lasts params.seconds longer (scaled)
  lost_response      submit: the task is created and billed, then the connection is reset
  truncate_download  download/fetch: full Content-Length, connection closed after
                     params.bytes [half the file]; later requests (e.g. a Range resume) succeed
  expire_urls        download/fetch: links answer 403 AccessDenied as if expired
  error_while_running task: while RUNNING, queries carry errorCode params.code ["1011"] and
                     params.message; the task ends FAILED with that code after its run time
  fail_task          task: ends FAILED with params.code ["1015"], params.message and a
                     failedReason object (exception_type "GenerationError", params.node_name
                     ["VideoExtend"]); no output is produced

Match (all given keys must hold): "prompt_contains" (the task's submit prompt contains it),
"task_id", "model" (model key or path). A rule with a match never hits a request that has no
task or prompt to compare (uploads, account calls).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

CLIENT_ROUTES = frozenset(
    {"upload", "submit", "query", "download", "account", "queue", "price", "cancel"}
)
ROUTES = CLIENT_ROUTES | {"any", "task", "fetch"}

GENERIC_KINDS = frozenset({"http_500_html", "reset", "http_429", "error_code", "non_json"})
TASK_ONLY_KINDS = frozenset({"error_while_running", "fail_task"})
LINK_KINDS = frozenset({"truncate_download", "expire_urls"})
KINDS = GENERIC_KINDS | TASK_ONLY_KINDS | LINK_KINDS | {"slow", "lost_response"}

MATCH_KEYS = frozenset({"prompt_contains", "task_id", "model"})


class FaultSpecError(ValueError):
    """A rule that cannot apply anywhere, or is malformed."""


@dataclass(frozen=True)
class FaultContext:
    """What a request or task is known to be about, for `match`."""

    prompt: str | None = None
    task_id: str | None = None
    model: tuple[str, ...] = ()  # model key and path(s)


@dataclass
class FaultRule:
    id: int
    kind: str
    route: str
    times: int | None
    match: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def applies_to(self, route: str) -> bool:
        if self.kind in TASK_ONLY_KINDS:
            return route == "task"
        if self.kind == "slow" and self.route == "task":
            return route == "task"
        if route == "task":
            return False
        if route == "fetch":
            return self.route == "fetch"
        return self.route in (route, "any")

    def matches(self, ctx: FaultContext) -> bool:
        want = self.match.get("prompt_contains")
        if want is not None and (ctx.prompt is None or str(want) not in ctx.prompt):
            return False
        want = self.match.get("task_id")
        if want is not None and ctx.task_id != str(want):
            return False
        want = self.match.get("model")
        return want is None or str(want) in ctx.model

    def view(self) -> dict[str, Any]:
        remaining = None if self.times is None else max(0, self.times - self.hits)
        return {
            "id": self.id,
            "kind": self.kind,
            "route": self.route,
            "times": self.times,
            "match": dict(self.match),
            "params": dict(self.params),
            "hits": self.hits,
            "remaining": remaining,
        }


def parse_rule(spec: Mapping[str, Any], rule_id: int) -> FaultRule:
    """Validate a rule as posted to the control API."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind: must be one of {', '.join(sorted(KINDS))}")
    route = spec.get("route", "any")
    if route not in ROUTES:
        raise FaultSpecError(f"route: must be one of {', '.join(sorted(ROUTES))}")
    if kind in TASK_ONLY_KINDS and route not in ("task", "submit", "any"):
        raise FaultSpecError(f"route: {kind} applies to tasks (use 'task')")
    if kind == "lost_response" and route not in ("submit", "any"):
        raise FaultSpecError("route: lost_response applies to submit only")
    if kind in LINK_KINDS and route not in ("download", "fetch", "any"):
        raise FaultSpecError(f"route: {kind} applies to download or fetch")
    if kind in TASK_ONLY_KINDS:
        route = "task"
    times = spec.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise FaultSpecError("times: must be a positive integer or null (always)")
    match = spec.get("match") or {}
    params = spec.get("params") or {}
    if not isinstance(match, Mapping) or not isinstance(params, Mapping):
        raise FaultSpecError("match and params must be objects")
    unknown = set(match) - MATCH_KEYS
    if unknown:
        raise FaultSpecError(f"match: unknown keys {sorted(unknown)}")
    return FaultRule(rule_id, kind, route, times, dict(match), dict(params))


class FaultEngine:
    """Thread-safe ordered rule list; `take` consumes one hit of the first matching rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        with self._lock:
            rule = parse_rule(spec, next(self._ids))
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.view() for r in self._rules]

    def take(
        self, route: str, ctx: FaultContext, kinds: Collection[str] | None = None
    ) -> FaultRule | None:
        """First live rule for `route` (restricted to `kinds`) matching `ctx`; counts a hit."""
        with self._lock:
            for rule in self._rules:
                if self._eligible(rule, route, ctx, kinds):
                    rule.hits += 1
                    return rule
        return None

    def take_all(
        self, route: str, ctx: FaultContext, kinds: Collection[str] | None = None
    ) -> list[FaultRule]:
        """Every live matching rule (used for tasks, which can carry several faults)."""
        taken: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if self._eligible(rule, route, ctx, kinds):
                    rule.hits += 1
                    taken.append(rule)
        return taken

    @staticmethod
    def _eligible(
        rule: FaultRule, route: str, ctx: FaultContext, kinds: Collection[str] | None
    ) -> bool:
        return (
            not rule.exhausted
            and (kinds is None or rule.kind in kinds)
            and rule.applies_to(route)
            and rule.matches(ctx)
        )
