"""GET/HEAD /files/<token>/<name>: the signed links of uploads and results, with Range.

Missing and expired links answer like Alibaba OSS (RunningHub's links are OSS-signed URLs):
404 NoSuchKey, 403 AccessDenied. The sandbox's own fetch of a task's input (see processing.py)
marks itself with FETCH_HEADER and meets route "fetch" faults there, not "download" ones here.
"""

from __future__ import annotations

import mimetypes
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..connection import cutter
from ..faults import GENERIC_KINDS, LINK_KINDS, FaultContext
from ..files import (
    StoredFile,
    Unsatisfiable,
    expired_xml,
    http_date,
    oss_error_xml,
    parse_range,
    read_chunks,
)
from ..processing import FETCH_HEADER
from .dependencies import Faults, State, upload_error

router = APIRouter()


@router.api_route("/files/{token}/{name}", methods=["GET", "HEAD"])
async def download(request: Request, token: str, name: str, st: State, faults: Faults) -> Response:
    entry = st.files.get(token, name)
    truncate_at: int | None = None
    expire = False
    if request.headers.get(FETCH_HEADER) != "1":
        ctx = faults.task_context(entry.task_id) if entry and entry.task_id else FaultContext()
        rule = await faults.take("download", ctx, GENERIC_KINDS | LINK_KINDS)
        if rule is not None and rule.kind == "expire_urls":
            expire = True
        elif rule is not None and rule.kind == "truncate_download":
            if entry is not None:
                truncate_at = int(rule.params.get("bytes", entry.size // 2))
        elif rule is not None:
            return faults.answer(rule, upload_error)
    if entry is None:
        body = oss_error_xml("NoSuchKey", "The specified key does not exist.")
        return Response(body, status_code=404, media_type="application/xml")
    ttl = st.config.url_ttl_seconds
    if expire or entry.expired(ttl):
        body = expired_xml(min(entry.expires_at(ttl), time.time()))
        return Response(body, status_code=403, media_type="application/xml")
    return _serve(request, entry, truncate_at)


def _serve(request: Request, entry: StoredFile, truncate_at: int | None) -> Response:
    """The file (or the one byte range asked for); with `truncate_at`, the connection is cut
    after that many bytes of a full-length promise."""
    size = entry.size
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{entry.token[:16]}-{size}"',
        "Last-Modified": http_date(entry.created_at),
        "Cache-Control": "private, max-age=0",
    }
    media = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
    try:
        selected = parse_range(request.headers.get("range"), size)
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    status, start, length = 200, 0, size
    if selected is not None:
        start, end = selected
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media)
    chunks = read_chunks(entry.path, start, length, stop_after=truncate_at, on_stop=cutter(request))
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=media)
