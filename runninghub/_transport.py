"""The HTTP side of the client: the httpx client (one TLS context per process), the API key
kept out of sight and sent per API call only, and the rules for the URLs we talk to."""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import IO
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from .exceptions import InputValidationError

logger = logging.getLogger("runninghub")

Files = Mapping[str, tuple[str, IO[bytes], str]]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) costs ~30 ms of CPU,
    and every pipeline task makes its own client."""
    return httpx.create_ssl_context()


class _Secret:
    """Holds the API key so that no repr, str or vars() dump can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def _reveal(api_key: str | SecretStr) -> str:
    value = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    if not isinstance(value, str) or not value.strip():
        raise InputValidationError(
            "the RunningHub API key is empty: set RUNNINGHUB_API_KEY",
            field="RUNNINGHUB_API_KEY",
            value=None,
            allowed="a non-empty API key",
        )
    return value.strip()


def _schemes(allow_http: bool) -> tuple[str, ...]:
    return ("https", "http") if allow_http else ("https",)


def check_base_url(base_url: str, allow_http: bool) -> str:
    """The base URL without its trailing slash; https only unless `allow_http`."""
    parts = urlsplit(base_url.strip() if isinstance(base_url, str) else "")
    if (
        parts.scheme not in _schemes(allow_http)
        or not parts.netloc
        or parts.query
        or parts.fragment
    ):
        wanted = "an http(s) URL" if allow_http else "an https URL (http only with allow_http)"
        raise InputValidationError(
            f"RUNNINGHUB_BASE_URL={base_url!r} is not {wanted}",
            field="RUNNINGHUB_BASE_URL",
            value=base_url,
            allowed=wanted,
        )
    return base_url.strip().rstrip("/")


def check_download_url(url: str, allow_http: bool) -> None:
    parts = urlsplit(url if isinstance(url, str) else "")
    if parts.scheme not in _schemes(allow_http) or not parts.netloc:
        wanted = "an http(s) URL" if allow_http else "an https URL"
        raise InputValidationError(
            f"refusing to download {loggable(str(url))!r}: not {wanted}",
            field="url",
            value=loggable(str(url)),
            allowed=wanted,
        )


def loggable(url: str) -> str:
    """A URL without its query string: signed links carry credentials there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url[:80]


class Transport:
    """One httpx client bound to RunningHub's base URL, and the key it authenticates with."""

    def __init__(
        self,
        api_key: str | SecretStr,
        base_url: str,
        *,
        allow_http: bool,
        timeout: float,
        httpx_transport: httpx.BaseTransport | None,
        user_agent: str,
    ) -> None:
        self._key = _Secret(_reveal(api_key))
        self.base_url = check_base_url(base_url, allow_http)
        self.allow_http = allow_http
        # No Authorization header here: it is added per API call, so download links on
        # other hosts (signed CDN URLs) never receive the key.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=httpx_transport,
            verify=_tls_context(),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, api_key='***')"

    def api_key(self) -> str:
        """The key itself, for the legacy calls that take it in the body."""
        return self._key.reveal()

    def scrub(self, text: str) -> str:
        """Remove the key from server text before it goes into a message or a log."""
        return text.replace(self._key.reveal(), "***")

    def send(
        self,
        method: str,
        path: str,
        what: str,
        attempt: int,
        *,
        json: Mapping[str, object] | None = None,
        files: Files | None = None,
    ) -> httpx.Response:
        """One authenticated API call; httpx's errors pass through for the caller to sort."""
        started = time.monotonic()
        response = self._http.request(
            method,
            path,
            json=json,
            files=files,
            headers={"Authorization": f"Bearer {self._key.reveal()}"},
        )
        logger.debug(
            "%s %s (%s) -> HTTP %d in %.2f s (attempt %d)",
            method,
            path,
            what,
            response.status_code,
            time.monotonic() - started,
            attempt,
        )
        return response

    def stream(
        self, url: str, headers: Mapping[str, str]
    ) -> AbstractContextManager[httpx.Response]:
        """A GET of `url` (any host, redirects followed) without the key, body not yet read."""
        return self._http.stream("GET", url, headers=headers, follow_redirects=True)

    def close(self) -> None:
        self._http.close()
