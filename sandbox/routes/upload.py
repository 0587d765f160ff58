"""POST /openapi/v2/media/upload/binary: a streamed multipart upload becomes a signed link."""

from __future__ import annotations

import mimetypes
import re
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import wire
from ..connection import dropped
from ..faults import FaultContext
from ..state import SandboxState
from ..upload_parser import MultipartError, TooLarge, UploadedFile, boundary_of, save_file_field
from .dependencies import Auth, Faults, State, drain, link_base, upload_error

UPLOAD_PATH = "/openapi/v2/media/upload/binary"
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_MEDIA_TYPES = {
    "video": {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"},
    "audio": {".mp3", ".wav", ".m4a", ".aac", ".flac", ".ogg"},
    "image": {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"},
}

router = APIRouter()


@router.post(UPLOAD_PATH)
async def upload(request: Request, st: State, auth: Auth, faults: Faults) -> Response:
    stream = request.stream()
    resp = await faults.check("upload", FaultContext(), upload_error)
    if resp is not None:
        if not dropped(request):
            await drain(stream)
        return resp
    if auth.bearer() is None:
        await drain(stream)
        return wire.upload_error(401, "invalid api key")
    content_type = request.headers.get("content-type")
    try:
        boundary_of(content_type)
    except MultipartError as exc:
        await drain(stream)
        return wire.upload_error(1007, f"file: {exc}")
    tmp = st.files.new_path("uploads", ".part")
    try:
        uploaded = await save_file_field(
            stream, content_type, tmp, max_bytes=st.config.max_upload_bytes
        )
    except TooLarge:
        return wire.upload_error(809, "file too large")
    except MultipartError as exc:
        await drain(stream)
        return wire.upload_error(808, f"upload failed: {exc}")
    if uploaded is None:
        return wire.upload_error(1007, "file: multipart field 'file' is required")
    if uploaded.size == 0:
        tmp.unlink(missing_ok=True)
        return wire.upload_error(1007, "file: is empty")
    return _publish(request, st, uploaded)


def _publish(request: Request, st: SandboxState, uploaded: UploadedFile) -> Response:
    """Give the stored part its final name and a signed link (the wire's upload answer)."""
    match = _SUFFIX.search(uploaded.filename)
    mime = uploaded.content_type.split(";")[0].strip()
    suffix = match.group(0).lower() if match else (mimetypes.guess_extension(mime) or ".bin")
    media = next((k for k, exts in _MEDIA_TYPES.items() if suffix in exts), "file")
    hex_name = f"{secrets.token_hex(16)}{suffix}"
    final = uploaded.path.with_name(hex_name)
    uploaded.path.rename(final)
    entry = st.files.add(final, hex_name, "upload")
    return JSONResponse(
        {
            "code": 0,
            "message": "success",
            "data": {
                "type": media,
                "download_url": entry.url(link_base(request)),
                "fileName": f"openapi/{hex_name}",
                "size": str(uploaded.size),
            },
        }
    )
