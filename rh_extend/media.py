"""Video facts the pipeline needs: fingerprint, probe, decode check, and a sample clip.

Everything streams: hashing reads fixed-size chunks and probing lets PyAV seek, so memory stays
flat however large the file is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from rh_extend.errors import MediaError

if TYPE_CHECKING:  # numpy only draws sample clips: not imported on a run's way to RunningHub
    import numpy as np

CHUNK = 1024 * 1024

# ISO-BMFF major brands that mean QuickTime rather than MP4.
_QUICKTIME_BRANDS = {b"qt  "}


@dataclass(frozen=True)
class VideoInfo:
    container: str  # "mp4", "mov", or PyAV's format name for anything else
    duration_s: float
    width: int
    height: int
    fps: float
    codec: str
    size_bytes: int
    frames: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _container_kind(path: Path, format_name: str) -> str:
    if "mp4" not in format_name and "mov" not in format_name:
        return format_name.split(",")[0]
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[4:8] == b"ftyp" and head[8:12] in _QUICKTIME_BRANDS:
        return "mov"
    return "mp4" if head[4:8] == b"ftyp" else "mov"


def probe(path: Path) -> VideoInfo:
    """Read the container's facts and decode the first frame; MediaError if it isn't a video."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            duration = _duration_s(container, stream)
            next(container.decode(stream))
            return VideoInfo(
                container=_container_kind(path, container.format.name),
                duration_s=duration,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=float(stream.average_rate or 0),
                codec=stream.codec_context.name,
                size_bytes=path.stat().st_size,
                frames=stream.frames,
            )
    except MediaError:
        raise
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as exc:
        raise MediaError(f"{path.name} is not a decodable video ({type(exc).__name__})") from exc


def _duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    raise MediaError("the video's duration is unknown")


def verify_decodes_to_end(path: Path) -> VideoInfo:
    """Decode the first frame and one near the end: catches truncated files cheaply. Returns
    the file's facts (`probe`)."""
    info = probe(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            target = max(info.duration_s - 0.5, 0.0)
            container.seek(
                int(target / float(stream.time_base or Fraction(1, 1000))),
                stream=stream,
                backward=True,
            )
            next(container.decode(stream))
    except (av.error.FFmpegError, StopIteration) as exc:
        raise MediaError(f"{path.name} does not decode to its end") from exc
    return info


def make_sample_clip(
    path: Path, *, seconds: float = 3.0, width: int = 320, height: int = 240, fps: int = 24
) -> Path:
    """A short H.264 MP4 with a moving test pattern: the demo's and the tests' input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    total = round(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast"}
        for index in range(total):
            frame = av.VideoFrame.from_ndarray(_pattern(index, width, height), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _pattern(index: int, width: int, height: int) -> np.ndarray:
    import numpy as np

    x = np.linspace(0, 255, width).astype(np.int32)
    y = np.linspace(0, 255, height).astype(np.uint8)
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = ((x[None, :] + index * 4) % 256).astype(np.uint8)
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 128
    bar = (index * 7) % width
    rgb[:, bar : bar + 8] = 255
    return rgb
