"""API-key helpers: where a request carries its key, and how the ledger names a key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

# Body fields that may carry a key; stripped from anything the ledger records.
KEY_FIELDS = ("apiKey", "apikey", "api_key", "APIKEY")


def fingerprint(key: str) -> str:
    """First 12 hex digits of the key's SHA-256: identifies a key without revealing it."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def bearer_key(authorization: str | None) -> str | None:
    """The key from an `Authorization: Bearer <key>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def body_key(body: Any) -> str | None:
    """A key sent in a legacy JSON body (`apiKey` or `apikey`)."""
    if not isinstance(body, Mapping):
        return None
    for name in KEY_FIELDS:
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def without_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request body with every key-carrying field removed."""
    lowered = {n.lower() for n in KEY_FIELDS}
    return {k: v for k, v in body.items() if k.lower() not in lowered}
