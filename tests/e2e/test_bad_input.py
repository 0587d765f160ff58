"""Every bad input the CLI can meet: exit 2, a message naming field, value and what is allowed,
and nothing sent to RunningHub (no upload, no submit, no bill) and nothing written to S3.

`RH_EXTEND_WRITE_DOCS=1 pytest tests/e2e/test_bad_input.py` also rewrites `docs/bad-input.md`
from what was observed (input → exit code → message).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest

from rh_extend.local_servers import LocalServers
from rh_extend.media import make_sample_clip

pytestmark = pytest.mark.usefixtures("prefect_api")

RH_EXTEND = str(Path(sys.executable).with_name("rh-extend"))
DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
MIB = 1024 * 1024
WAN = "wan-2.7"
SINGLE = "skyreels-v3-single-shot"
SWITCH = "skyreels-v3-shot-switching"


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the row's first column in docs/bad-input.md
    source: str  # a name from the `inputs` fixture
    args: tuple[str, ...]
    needles: tuple[str, ...]  # each must appear in the message; {src} = the source path
    env: dict[str, str] = field(default_factory=dict)  # {sandbox} = the sandbox's base URL
    code: str = "InputValidationError"  # the JSON line's error.code
    json_line: bool = True  # False: click rejects the option itself, before our code runs
    unreadable: bool = False  # run without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (root)


CASES = [
    Case(
        "file-missing",
        "source file does not exist",
        "missing",
        ("--model", WAN),
        ("source=", "{src}", "no such file"),
        code="SOURCE",
    ),
    Case(
        "file-is-directory",
        "source is a directory",
        "directory",
        ("--model", WAN),
        ("source=", "{src}", "not a regular file"),
        code="SOURCE",
    ),
    Case(
        "file-unreadable",
        "source file not readable (mode 000; for root: run without the DAC capabilities)",
        "unreadable",
        ("--model", WAN),
        ("source=", "{src}", "not readable"),
        code="SOURCE",
        unreadable=True,
    ),
    Case(
        "file-empty",
        "source file is empty (0 bytes)",
        "empty",
        ("--model", WAN),
        ("source=", "{src}", "empty"),
        code="SOURCE",
    ),
    Case(
        "not-a-video",
        "random bytes named .mp4",
        "garbage",
        ("--model", WAN),
        ("source=", "{src}", "not a decodable video"),
        code="SOURCE",
    ),
    Case(
        "over-size-limit",
        "a valid MP4 padded to 101 MiB (limit 100 MiB)",
        "oversize_video",
        ("--model", SWITCH, "--prompt", "x", "--duration", "2"),
        ("input file", "101.0 MiB", "100.0 MiB", SWITCH),
    ),
    Case(
        "over-size-not-a-video",
        "101 MiB of zeros named .mp4 (decoding is checked before size)",
        "oversize_zeros",
        ("--model", SWITCH, "--prompt", "x", "--duration", "2"),
        ("source=", "{src}", "not a decodable video"),
        code="SOURCE",
    ),
    Case(
        "mov-to-skyreels",
        "a QuickTime .mov to SkyReels (MP4 only)",
        "mov",
        ("--model", SINGLE, "--prompt", "x"),
        ("input format", "'mov'", SINGLE, "allowed mp4"),
    ),
    Case(
        "wan-duration-too-high",
        "Wan 2.7 --duration 16",
        "clip",
        ("--model", WAN, "--duration", "16"),
        ("duration=16", "out of range", WAN, "allowed 2 … 15"),
    ),
    Case(
        "single-shot-duration-too-low",
        "SkyReels single-shot --duration 4",
        "clip",
        ("--model", SINGLE, "--prompt", "x", "--duration", "4"),
        ("duration=4", "out of range", SINGLE, "allowed 5 … 30"),
    ),
    Case(
        "shot-switching-duration-too-high",
        "SkyReels shot-switching --duration 6",
        "clip",
        ("--model", SWITCH, "--prompt", "x", "--duration", "6"),
        ("duration=6", "out of range", SWITCH, "allowed 2 … 5"),
    ),
    Case(
        "duration-not-a-number",
        "--duration abc",
        "clip",
        ("--model", WAN, "--duration", "abc"),
        # typer's message names neither the value nor the range, and no JSON line: see report.
        ("Invalid value for '--duration'", "valid integer"),
        code="(usage)",
        json_line=False,
    ),
    Case(
        "wan-duration-not-longer-than-input",
        "Wan 2.7 --duration 3 for a 3 s clip (duration is the total length)",
        "clip",
        ("--model", WAN, "--duration", "3"),
        ("duration=3", "longer than the input clip", "3.0 s", WAN, "allowed 4 … 15"),
    ),
    Case(
        "resolution-invalid",
        "Wan 2.7 --resolution 4K",
        "clip",
        ("--model", WAN, "--resolution", "4K"),
        ("resolution='4K'", "allowed 720P, 1080P"),
    ),
    Case(
        "cut-type-invalid",
        "shot-switching --cut-type Zoom",
        "clip",
        ("--model", SWITCH, "--prompt", "x", "--cut-type", "Zoom"),
        ("cutType='Zoom'", "allowed Auto, Cut-In, Cut-Out, Shot/Reverse Shot, Multi-Angle"),
    ),
    Case(
        "wan-prompt-too-long",
        "Wan 2.7 --prompt of 5001 characters",
        "clip",
        ("--model", WAN, "--prompt", "a" * 5001),
        ("prompt", "5001 characters", "allowed 1 … 5000 characters"),
    ),
    Case(
        "shot-switching-prompt-too-long",
        "shot-switching --prompt of 2049 characters",
        "clip",
        ("--model", SWITCH, "--prompt", "a" * 2049),
        ("prompt", "2049 characters", SWITCH, "allowed up to 2048 characters"),
    ),
    Case(
        "wan-negative-prompt-too-long",
        "Wan 2.7 --negative-prompt of 501 characters",
        "clip",
        ("--model", WAN, "--negative-prompt", "n" * 501),
        ("negativePrompt", "501 characters", "allowed up to 500 characters"),
    ),
    Case(
        "single-shot-prompt-missing",
        "SkyReels single-shot without --prompt",
        "clip",
        ("--model", SINGLE),
        ("prompt is required", SINGLE),
    ),
    Case(
        "shot-switching-prompt-blank",
        "shot-switching with --prompt '   '",
        "clip",
        ("--model", SWITCH, "--prompt", "   "),
        ("prompt is required", SWITCH),
    ),
    Case(
        "seed-negative",
        "Wan 2.7 --seed -1",
        "clip",
        ("--model", WAN, "--seed=-1"),
        ("seed=-1", "out of range", "allowed 0 … 2147483647"),
    ),
    Case(
        "seed-too-high",
        "Wan 2.7 --seed 2147483648",
        "clip",
        ("--model", WAN, "--seed", "2147483648"),
        ("seed=2147483648", "out of range", "allowed 0 … 2147483647"),
    ),
    Case(
        "seed-for-skyreels",
        "--seed for SkyReels (Wan only)",
        "clip",
        ("--model", SINGLE, "--prompt", "x", "--seed", "7"),
        ("unknown parameter 'seed'", SINGLE, "allowed prompt, duration"),
    ),
    Case(
        "unknown-model",
        "--model no-such-model",
        "clip",
        ("--model", "no-such-model"),
        ("unknown model 'no-such-model'", f"allowed {WAN}, {SINGLE}, {SWITCH}"),
    ),
    Case(
        "api-key-missing",
        "RUNNINGHUB_API_KEY empty",
        "clip",
        ("--model", WAN),
        ("RUNNINGHUB_API_KEY is not set",),
        env={"RUNNINGHUB_API_KEY": ""},
        code="CONFIG",
    ),
    Case(
        "base-url-not-https",
        "RUNNINGHUB_BASE_URL http://… with RUNNINGHUB_ALLOW_HTTP=0",
        "clip",
        ("--model", WAN),
        ("RUNNINGHUB_BASE_URL='{sandbox}'", "not https", "RUNNINGHUB_ALLOW_HTTP=1"),
        env={"RUNNINGHUB_ALLOW_HTTP": "0"},
        code="CONFIG",
    ),
    Case(
        "bucket-missing",
        "RH_EXTEND_S3_BUCKET empty",
        "clip",
        ("--model", WAN),
        ("RH_EXTEND_S3_BUCKET is not set",),
        env={"RH_EXTEND_S3_BUCKET": ""},
        code="CONFIG",
    ),
    Case(
        "key-block-missing",
        "RH_EXTEND_RUNNINGHUB_KEY_BLOCK names a block the Prefect API doesn't have",
        "clip",
        ("--model", WAN),
        (
            "RH_EXTEND_RUNNINGHUB_KEY_BLOCK='no-such-key'",
            "has no Secret block named 'no-such-key'",
        ),
        env={"RH_EXTEND_RUNNINGHUB_KEY_BLOCK": "no-such-key"},
        code="CONFIG",
    ),
    Case(
        "aws-block-missing",
        "RH_EXTEND_AWS_CREDENTIALS_BLOCK names a block the Prefect API doesn't have",
        "clip",
        ("--model", WAN),
        (
            "RH_EXTEND_AWS_CREDENTIALS_BLOCK='no-such-aws'",
            "has no AWS Credentials block named 'no-such-aws'",
        ),
        env={"RH_EXTEND_AWS_CREDENTIALS_BLOCK": "no-such-aws"},
        code="CONFIG",
    ),
]


def _make_mov(path: Path) -> Path:
    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(24):
            frame = av.VideoFrame(160, 120, "yuv420p")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def inputs(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    empty = root / "empty.mp4"
    empty.touch()
    garbage = root / "garbage.mp4"
    # fixed bytes: fresh random ones now and then look like an audio file to ffmpeg
    garbage.write_bytes(random.Random(7).randbytes(64 * 1024))
    unreadable = root / "unreadable.mp4"
    unreadable.write_bytes(clip.read_bytes())
    unreadable.chmod(0)
    # Sparse files: 101 MiB on paper, nothing on disk. Zeros after the `moov` atom still decode.
    oversize_video = make_sample_clip(root / "oversize.mp4", seconds=1.0)
    os.truncate(oversize_video, 101 * MIB)
    oversize_zeros = root / "zeros.mp4"
    with oversize_zeros.open("wb") as fh:
        fh.truncate(101 * MIB)
    (root / "directory.mp4").mkdir()
    return {
        "clip": clip,
        "missing": root / "missing.mp4",
        "directory": root / "directory.mp4",
        "unreadable": unreadable,
        "empty": empty,
        "garbage": garbage,
        "oversize_video": oversize_video,
        "oversize_zeros": oversize_zeros,
        "mov": _make_mov(root / "clip.mov"),
    }


def _without_file_capabilities() -> list[str]:
    """For root, whom mode 000 doesn't stop: run the CLI through util-linux's `setpriv` with
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped, so it honours file permissions like any
    user. (Not a `preexec_fn`: code run between fork and exec in this multi-threaded pytest
    process can deadlock the child, and once hung this test for its whole timeout.)"""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


Rows = dict[str, tuple[str, str, int, str, str]]


@pytest.fixture(scope="module")
def doc_rows() -> Iterator[Rows]:
    rows: Rows = {}
    yield rows
    if os.environ.get("RH_EXTEND_WRITE_DOCS") == "1" and len(rows) == len(CASES):
        _write_doc([rows[case.id] for case in CASES])


def _write_doc(rows: list[tuple[str, str, int, str, str]]) -> None:
    lines = [
        "# Bad input: what `rh-extend extend … --json` answers",
        "",
        "Observed by `tests/e2e/test_bad_input.py` (regenerate: `RH_EXTEND_WRITE_DOCS=1 "
        ".venv/bin/pytest tests/e2e/test_bad_input.py`). Every case exits **2** before any "
        "RunningHub call: no upload, no submit, nothing billed, nothing written to S3. The message "
        "is the JSON line's `error.message` (stderr where marked: click rejects the option before "
        "rh-extend runs, and prints no JSON line). The clip is 3 s, 320×240, 24 fps.",
        "",
        "| input | arguments | exit | error.code | message |",
        "|---|---|---|---|---|",
    ]
    for what, args, code, error_code, message in rows:
        cells = [what, f"`{args}`", str(code), error_code, message]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines) + "\n")


def _shown_args(case: Case) -> str:
    shown = []
    for arg in case.args:
        if len(arg) > 40:
            shown.append(f"<{len(arg)} × {arg[0]}>")
        else:
            shown.append(f"'{arg}'" if " " in arg or not arg.strip() else arg)
    env = " ".join(f"{k}={v!r}" for k, v in case.env.items())
    return " ".join(filter(None, [env, "rh-extend extend", f"<{case.source}>", *shown]))


def _generic(text: str, src: Path, stack: LocalServers, prefect_api: str) -> str:
    return (
        text.replace(str(src), f"<{src.name}>")
        .replace(stack.sandbox.base_url, "http://<sandbox>")
        .replace(prefect_api, "http://<prefect>/api")
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_before_any_call(
    case: Case,
    inputs: dict[str, Path],
    stack: LocalServers,
    sandbox: Any,
    s3_prefix: str,
    prefect_api: str,
    doc_rows: Rows,
) -> None:
    # A zero-second `slow` rule on every RunningHub route changes nothing but counts the calls.
    tripwire = sandbox.add_fault("slow", route="any", times=None, params={"seconds": 0})
    src = inputs[case.source]
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "200"}
    env.update({k: v.format(sandbox=stack.sandbox.base_url) for k, v in case.env.items()})

    prefix = _without_file_capabilities() if case.unreadable else []
    proc = subprocess.run(
        [*prefix, RH_EXTEND, "extend", str(src), *case.args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )

    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    if case.json_line:
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        assert line["status"] == "failed"
        assert line["task_id"] is None and line["cost"] is None
        error_code, message = line["error"]["code"], line["error"]["message"]
    else:
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", proc.stderr).split())
        error_code, message = "(usage)", text[text.find("Invalid value") :]
    assert error_code == case.code
    for needle in case.needles:
        expected = needle.format(src=src, sandbox=stack.sandbox.base_url)
        assert expected in message, f"{expected!r} not in {message!r}"

    assert sandbox.ledger() == []
    assert sandbox.submits_received == 0
    calls = [rule["hits"] for rule in sandbox.faults() if rule["id"] == tripwire["id"]]
    assert calls == [0], "the CLI called RunningHub"
    listing = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=f"{s3_prefix}/")
    assert listing.get("KeyCount", 0) == 0, "the CLI wrote to the archive"

    shown = _generic(message, src, stack, prefect_api)
    if not case.json_line:
        shown += " *(stderr)*"
    doc_rows[case.id] = (case.what, _shown_args(case), proc.returncode, error_code, shown)
