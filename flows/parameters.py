"""Flow parameters to the Prefect API without FastAPI.

Prefect serializes a new run's parameters with FastAPI's `jsonable_encoder`, and imports FastAPI
for it when the process creates its first flow run: ≈ 0.2 s here, on the way from
`rh-extend extend` to its first RunningHub call. rh-extend's flows take plain JSON values (str,
int, float, bool, None, lists and string-keyed dicts of them), which that encoder returns as
they are; those go as they are, anything else the Prefect way.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import Flow

F = TypeVar("F", bound=Flow[Any, Any])
_SCALARS = (str, int, float, bool, type(None))


def plain_json_parameters(flow: F) -> F:
    """FLOW, its plain JSON parameters serialized without importing FastAPI."""
    prefect_way = flow.serialize_parameters

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        if all(_plain(value) for value in parameters.values()):
            return dict(parameters)
        return prefect_way(parameters)

    flow.serialize_parameters = serialize_parameters  # type: ignore[method-assign]
    return flow


def _plain(value: object) -> bool:
    """A JSON value the encoder would return unchanged (exact types: no str enums, no
    pydantic models)."""
    if type(value) in _SCALARS:
        return True
    if type(value) is list:
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False
