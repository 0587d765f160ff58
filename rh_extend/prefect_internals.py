"""Where rh-extend relies on Prefect beyond its public API — all of it, in this one module.

Each piece saves time that was measured (docs/benchmarks.md) and has no public equivalent in
Prefect 3.8.8. `tests/integration/test_prefect_internals.py` fails when Prefect changes
underneath one of them; if it does, dropping the piece costs the time noted, not correctness.

1. **One API client for the flow runs this process starts** (`using_sync_client`). Prefect
   builds a client per flow run, and each new client loads certifi's CA bundle into a TLS
   context (≈ 30 ms of CPU) and fetches a CSRF token. `SyncClientContext`'s own `__enter__`
   would share one, but it opens and closes the client it holds and counts its entries without
   a lock, so it can't be entered from a batch's threads at once. We set its context variable
   to a context holding our open client instead.
2. **Plain JSON flow parameters sent without FastAPI** (`plain_json_parameters`). Prefect's
   engine serializes a new run's parameters with `Flow.serialize_parameters`, whose FastAPI
   `jsonable_encoder` import costs ≈ 0.2 s on the way from `rh-extend extend` to its first
   RunningHub call (P5). Our flows take plain JSON values and pydantic models, which that
   encoder turns into what `model_dump(mode="json")` gives; we override the method on our
   flows, relying on the engine calling it when it creates a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.context import SyncClientContext
from pydantic import BaseModel

F = TypeVar("F", bound=Flow[Any, Any])
_SCALARS = (str, int, float, bool, type(None))


@contextmanager
def using_sync_client(client: SyncPrefectClient) -> Iterator[None]:
    """Flow runs started inside this block (this thread) use CLIENT, which must be open."""
    context = SyncClientContext.model_construct(client=client)
    token = SyncClientContext.__var__.set(context)
    try:
        yield
    finally:
        SyncClientContext.__var__.reset(token)


def plain_json_parameters(flow: F) -> F:
    """FLOW, its plain JSON and pydantic parameters serialized without importing FastAPI."""
    prefect_way = flow.serialize_parameters

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        if all(_plain(value) for value in parameters.values()):
            return {name: _json(value) for name, value in parameters.items()}
        return prefect_way(parameters)

    flow.serialize_parameters = serialize_parameters  # type: ignore[method-assign]
    return flow


def _plain(value: object) -> bool:
    """A JSON value the encoder would return unchanged (exact types: no str enums), or a pydantic
    model (which it dumps in JSON mode)."""
    if type(value) in _SCALARS or isinstance(value, BaseModel):
        return True
    if type(value) is list:
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if type(value) is list:
        return [_json(item) for item in value]
    if type(value) is dict:
        return {key: _json(item) for key, item in value.items()}
    return value
