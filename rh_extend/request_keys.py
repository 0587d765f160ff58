"""The request key: one paid submit per key, one archive folder per key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping


def request_key(
    input_sha256: str, model_id: str, params: Mapping[str, object], take: str | None = None
) -> str:
    """sha256 over the input's content hash, the model and its normalized parameters.

    A new seed, a new `take` label or any other parameter change is a new request (and a new
    paid take); the same video under another file name or URL is the same request.
    """
    request: dict[str, object] = {"input": input_sha256, "model": model_id, "params": dict(params)}
    if take:
        request["take"] = take
    canonical = json.dumps(
        request,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
