"""A contact sheet of the junction: frames just before and after where the source ends.

The junction is where a model's continuation starts, and where it goes wrong when it does (a
jump, a colour shift, a frozen frame). Three frames of the source (1 s and 0.5 s before the
junction, and its last frame) and three of the extension (its first frame, 0.5 s and 1 s after)
are put side by side, labelled with their times, and written as a PNG.

Only PyAV and numpy: frames are scaled by libswscale, labels drawn with a tiny bitmap font, and
the PNG written by a few lines of zlib (Pillow is not a dependency).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import numpy as np

CELL = 240  # thumbnail box, px
GAP = 8
JUNCTION_BAR = 6
HEADER = 30
FOOTER = 26
BACKGROUND = (28, 30, 36)
SOURCE_COLOUR = (120, 190, 255)
EXTENSION_COLOUR = (255, 170, 60)
SOURCE_OFFSETS = (-1.0, -0.5)
EXTENSION_OFFSETS = (0.5, 1.0)


@dataclass(frozen=True)
class SheetFrame:
    side: str  # "source" | "extension"
    time_s: float


@dataclass(frozen=True)
class ContactSheet:
    path: Path
    width: int
    height: int
    junction_s: float
    frames: tuple[SheetFrame, ...]


# 5×7 glyphs, enough for the labels ("SOURCE", "EXTENSION", times like "2.958S -0.042").
_FONT = {
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "####.|....#|....#|.###.|....#|....#|####.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": ".###.|#....|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|....#|.###.",
    ".": ".....|.....|.....|.....|.....|.##..|.##..",
    "-": ".....|.....|.....|.###.|.....|.....|.....",
    "+": ".....|..#..|..#..|#####|..#..|..#..|.....",
    "=": ".....|.....|#####|.....|#####|.....|.....",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
    "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
    ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
    "N": "#...#|##..#|#.#.#|#..##|#...#|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
    " ": ".....|.....|.....|.....|.....|.....|.....",
    "s": ".....|.....|.####|#....|.###.|....#|####.",
}
_UNKNOWN = "#####|#...#|#...#|#...#|#...#|#...#|#####"


@cache
def _glyph(char: str, scale: int) -> np.ndarray:
    """CHAR's mask, each dot SCALE×SCALE pixels (built once: labels are drawn on every run)."""
    rows = (_FONT.get(char) or _FONT.get(char.upper(), _UNKNOWN)).split("|")
    dots = np.array([[cell == "#" for cell in row] for row in rows], dtype=bool)
    mask = np.kron(dots, np.ones((scale, scale), dtype=bool))
    mask.flags.writeable = False  # shared by every caller
    return mask


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 6 * scale - scale if text else 0


def draw_text(
    canvas: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: int = 2
) -> None:
    """Draw TEXT with its top-left corner at (x, y); what falls outside is clipped."""
    height, width = canvas.shape[:2]
    for index, char in enumerate(text):
        mask = _glyph(char, scale)
        left = x + index * 6 * scale
        top = y
        bottom, right = top + mask.shape[0], left + mask.shape[1]
        if left >= width or top >= height or right <= 0 or bottom <= 0:
            continue
        clip = mask[max(0, -top) : mask.shape[0] - max(0, bottom - height),
                    max(0, -left) : mask.shape[1] - max(0, right - width)]  # fmt: skip
        region = canvas[max(0, top) : min(bottom, height), max(0, left) : min(right, width)]
        region[clip] = colour


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG, every row with the Up filter (good enough for photos, no Pillow)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected an H×W×3 uint8 array")
    height, width = rgb.shape[:2]
    rows = rgb.reshape(height, width * 3)
    raw = np.empty((height, 1 + width * 3), dtype=np.uint8)
    raw[:, 0] = 2  # each row's filter type: Up
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps, as PNG wants

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        # level 1: the sheet is built on every run's critical path; level 6 took 65 ms more per
        # sheet here for a file only 20 % smaller
        + chunk(b"IDAT", zlib.compress(raw.data, 1))
        + chunk(b"IEND", b"")
    )


def _frame_time(frame: av.VideoFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def _pick_frames(
    path: Path, junction_s: float
) -> tuple[list[tuple[float, av.VideoFrame]], list[tuple[float, av.VideoFrame]]]:
    """(source frames, extension frames), each as (time, frame), decoded in one pass."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 24)
        half = 0.5 / fps
        before_targets = [max(junction_s + offset, 0.0) for offset in SOURCE_OFFSETS]
        before_targets.append(max(junction_s - 2 * half, 0.0))  # the source's last frame
        after_targets = [junction_s, *(junction_s + offset for offset in EXTENSION_OFFSETS)]
        before: list[tuple[float, av.VideoFrame] | None] = [None] * len(before_targets)
        after: list[tuple[float, av.VideoFrame] | None] = [None] * len(after_targets)
        last: tuple[float, av.VideoFrame] | None = None
        start = max(min(before_targets) - 0.5, 0.0)
        if start > 0 and stream.time_base is not None:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            when = _frame_time(frame)
            if when is None:
                continue
            last = (when, frame)
            for index, target in enumerate(before_targets):
                if when <= target + half:
                    before[index] = (when, frame)
            for index, target in enumerate(after_targets):
                if after[index] is None and when >= target - half:
                    after[index] = (when, frame)
            if all(item is not None for item in after):
                break
    if last is None:
        raise ValueError(f"{path.name}: no decodable frame")
    # A video shorter than the offsets: fall back to the nearest frame there is.
    first_before = next((item for item in before if item is not None), last)
    picked_before = [item or first_before for item in before]
    picked_after = [item or last for item in after]
    return picked_before, picked_after


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    scale = min(CELL / frame.width, CELL / frame.height)
    width = max(2, int(frame.width * scale) // 2 * 2)
    height = max(2, int(frame.height * scale) // 2 * 2)
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


def build_contact_sheet(video: Path, junction_s: float, dest: Path) -> ContactSheet:
    """Write a PNG of 3 source frames | 3 extension frames around JUNCTION_S seconds of VIDEO."""
    before, after = _pick_frames(video, junction_s)
    cells = [("source", item) for item in before] + [("extension", item) for item in after]
    thumbs = [_thumbnail(frame) for _, (_, frame) in cells]
    cell_h = max(thumb.shape[0] for thumb in thumbs)
    width = 6 * CELL + 8 * GAP + JUNCTION_BAR
    height = HEADER + cell_h + FOOTER
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    bar_left = 3 * CELL + 4 * GAP
    canvas[:, bar_left : bar_left + JUNCTION_BAR] = EXTENSION_COLOUR
    title_source = "SOURCE"
    title_ext = f"EXTENSION  (JUNCTION AT {junction_s:.2f}s)"
    draw_text(canvas, title_source, GAP, 8, SOURCE_COLOUR)
    draw_text(canvas, title_ext, bar_left + JUNCTION_BAR + GAP, 8, EXTENSION_COLOUR)
    frames: list[SheetFrame] = []
    for index, ((side, (when, _)), thumb) in enumerate(zip(cells, thumbs, strict=True)):
        left = GAP + index * (CELL + GAP) + (JUNCTION_BAR + GAP if side == "extension" else 0)
        x = left + (CELL - thumb.shape[1]) // 2
        y = HEADER + (cell_h - thumb.shape[0]) // 2
        canvas[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
        label = f"{when:.2f}s ({when - junction_s:+.2f})"
        colour = SOURCE_COLOUR if side == "source" else EXTENSION_COLOUR
        draw_text(
            canvas, label, left + (CELL - text_width(label)) // 2, HEADER + cell_h + 6, colour
        )
        frames.append(SheetFrame(side=side, time_s=round(when, 3)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(png_bytes(canvas))
    return ContactSheet(
        path=dest, width=width, height=height, junction_s=junction_s, frames=tuple(frames)
    )
