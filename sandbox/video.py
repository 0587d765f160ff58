"""Video probing and the fake "extension" model, with PyAV only (no ffmpeg binary here).

The output is a real, playable H.264 (yuv420p) MP4: the input's frames re-encoded at the same
size (rounded down to even, as yuv420p requires) and frame rate, followed by generated
extension frames. Extension frames start from the input's last frame, progressively tinted,
with a red border and a moving white bar, so a contact sheet around the junction shows exactly
where the "model" took over. Only the video stream is kept: audio is dropped. Variable frame
rate inputs are re-timed to their average rate. Frames are streamed: a video is never held
whole in memory (only the last decoded frame is kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

OUTPUT_CODEC = "libx264"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23"}
_TINT = np.array([255.0, 0.0, 200.0], dtype=np.float32)  # magenta-ish


class VideoError(Exception):
    """The input cannot be used (not a video, unsupported container, undecodable)."""


@dataclass(frozen=True)
class VideoInfo:
    container: str  # "mp4", "mov" or the demuxer's name for anything else
    codec: str
    width: int
    height: int
    fps: Fraction
    frames: int
    has_audio: bool

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps) if self.fps else 0.0


@dataclass(frozen=True)
class ExtendResult:
    input_frames: int
    added_frames: int
    fps: Fraction
    width: int
    height: int

    @property
    def output_frames(self) -> int:
        return self.input_frames + self.added_frames

    @property
    def input_seconds(self) -> float:
        return float(self.input_frames / self.fps)

    @property
    def added_seconds(self) -> float:
        return float(self.added_frames / self.fps)

    @property
    def output_seconds(self) -> float:
        return float(self.output_frames / self.fps)


def detect_container(path: Path) -> str:
    """ "mp4" or "mov" from the real bytes (ftyp major brand), else the demuxer's name.

    Extensions lie and PyAV names one demuxer for both ("mov,mp4,m4a,..."), so the ISO-BMFF
    `ftyp` box decides: brand "qt  " or no ftyp at all means QuickTime.
    """
    try:
        with av.open(str(path)) as container:
            name = container.format.name
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"not a readable media file: {exc}") from exc
    if "mp4" not in name.split(","):
        return name
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) == 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    return "mov"


def _fps_of(stream: VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(25)


def probe(path: Path) -> VideoInfo:
    """Container, codec, size, frame rate and frame count (counted from packets if unknown)."""
    kind = detect_container(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            return VideoInfo(
                container=kind,
                codec=stream.codec_context.name,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=_fps_of(stream),
                frames=int(frames),
                has_audio=bool(container.streams.audio),
            )
    except av.FFmpegError as exc:
        raise VideoError(f"cannot read video: {exc}") from exc


def frames_for(seconds: float, fps: Fraction) -> int:
    """Whole frames closest to `seconds` at `fps`."""
    return round(Fraction(seconds) * fps)


def extension_frame(last: np.ndarray, k: int, total: int, fps: Fraction) -> np.ndarray:
    """Extension frame k (1-based) of `total`, derived from the last input frame (RGB)."""
    height, width = last.shape[:2]
    t = k / max(total, 1)
    mix = 0.15 + 0.45 * t
    img = last.astype(np.float32) * (1.0 - mix) + _TINT * mix
    # A bar that crosses the frame every two seconds: motion a viewer (or a diff) can see.
    bar_w = max(2, width // 16)
    x = int(k * width / max(float(fps) * 2.0, 1.0)) % width
    img[:, x : x + bar_w] = 255.0
    border = max(2, min(width, height) // 40)
    img[:border, :] = img[-border:, :] = (255.0, 0.0, 0.0)
    img[:, :border] = img[:, -border:] = (255.0, 0.0, 0.0)
    return np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))


def extend_video(
    src: Path,
    dst: Path,
    *,
    added_frames: int | None = None,
    total_frames: int | None = None,
    total_seconds: float | None = None,
    added_seconds: float | None = None,
) -> ExtendResult:
    """Re-encode `src` to H.264 MP4 at `dst` and append extension frames.

    Give exactly one of: added_frames / added_seconds (appended length) or
    total_frames / total_seconds (output length). Raises VideoError if the input cannot be
    decoded, and ValueError if a total is not longer than the input.
    """
    given = [v is not None for v in (added_frames, total_frames, total_seconds, added_seconds)]
    if sum(given) != 1:
        raise TypeError("give exactly one of added_/total_ frames/seconds")
    try:
        with av.open(str(src)) as inp:
            if not inp.streams.video:
                raise VideoError("no video stream")
            in_stream = inp.streams.video[0]
            in_stream.thread_type = "AUTO"
            fps = _fps_of(in_stream)
            width = in_stream.codec_context.width // 2 * 2
            height = in_stream.codec_context.height // 2 * 2
            if width < 2 or height < 2:
                raise VideoError(f"frame too small: {width}x{height}")

            def target_added(n_in: int) -> int:
                if added_frames is not None:
                    return added_frames
                if added_seconds is not None:
                    return frames_for(added_seconds, fps)
                total = total_frames if total_frames is not None else 0
                if total_seconds is not None:
                    total = frames_for(total_seconds, fps)
                return total - n_in

            return _encode(inp, in_stream, dst, fps, width, height, target_added)
    except av.FFmpegError as exc:
        raise VideoError(f"cannot decode video: {exc}") from exc


def _encode(
    inp: av.container.InputContainer,
    in_stream: VideoStream,
    dst: Path,
    fps: Fraction,
    width: int,
    height: int,
    target_added: Callable[[int], int],
) -> ExtendResult:
    dst.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        stream = cast(VideoStream, out.add_stream(OUTPUT_CODEC, rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / fps
        stream.codec_context.options = dict(ENCODER_OPTIONS)
        n_in = 0
        last: VideoFrame | None = None
        for frame in inp.decode(in_stream):
            _write(out, stream, frame.reformat(width=width, height=height, format="yuv420p"), n_in)
            last = frame
            n_in += 1
        if last is None:
            raise VideoError("the video has no decodable frames")
        added = target_added(n_in)
        if added <= 0:
            raise ValueError(
                f"requested length is not longer than the input ({n_in} frames, "
                f"{float(n_in / fps):.2f} s)"
            )
        last_rgb = last.to_ndarray(format="rgb24", width=width, height=height)
        for k in range(1, added + 1):
            img = extension_frame(last_rgb, k, added, fps)
            frame = VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            _write(out, stream, frame, n_in + k - 1)
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return ExtendResult(n_in, added, fps, width, height)


def _write(
    out: av.container.OutputContainer,
    stream: VideoStream,
    frame: VideoFrame,
    index: int,
) -> None:
    frame.pts = index
    frame.time_base = stream.codec_context.time_base
    for packet in stream.encode(frame):
        out.mux(packet)


def test_pattern(index: int, width: int, height: int, fps: float) -> np.ndarray:
    """A testsrc-like RGB frame: colour bars, a moving square, a frame-number stripe."""
    bars = np.array(
        [
            [192, 192, 192],
            [192, 192, 0],
            [0, 192, 192],
            [0, 192, 0],
            [192, 0, 192],
            [192, 0, 0],
            [0, 0, 192],
        ],
        dtype=np.uint8,
    )
    cols = (np.arange(width) * len(bars) // width).clip(0, len(bars) - 1)
    img = np.repeat(bars[cols][np.newaxis, :, :], height, axis=0).copy()
    side = max(4, min(width, height) // 5)
    x = int(index * width / max(fps * 2.0, 1.0)) % max(1, width - side)
    y = (height - side) // 2
    img[y : y + side, x : x + side] = 255
    bits = max(1, width // 16)
    for b in range(16):  # frame number in binary along the top edge
        if (index >> b) & 1:
            img[: max(2, height // 20), b * bits : (b + 1) * bits] = 0
    return img


def make_test_clip(
    path: Path | str,
    *,
    seconds: float = 2.0,
    width: int = 160,
    height: int = 120,
    fps: int | Fraction = 12,
    container: str = "mp4",
    codec: str = "libx264",
    with_audio: bool = False,
) -> Path:
    """Write a small synthetic clip (H.264 by default) for tests and demos; returns its path."""
    if codec == "libx264" and (width % 2 or height % 2):
        raise ValueError("libx264 with yuv420p needs an even width and height")
    path = Path(path)
    rate = Fraction(fps)
    frames = frames_for(seconds, rate)
    pix_fmt = "yuv420p"
    with av.open(str(path), "w", format=container) as out:
        stream = cast(VideoStream, out.add_stream(codec, rate=rate))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.codec_context.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=44100) if with_audio else None
        for i in range(frames):
            img = test_pattern(i, width, height, float(rate))
            frame = VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if audio is not None:
            _write_tone(out, audio, seconds)
    return path


def _write_tone(out: av.container.OutputContainer, stream: AudioStream, seconds: float) -> None:
    rate, block = 44100, 1024
    for k in range(math.ceil(seconds * rate / block)):
        t = (np.arange(block) + k * block) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = k * block
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
