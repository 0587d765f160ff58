"""Shared helpers: child processes that print one JSON result, statistics, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.servers import ROOT

MARK = "BENCH-RESULT "


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_json(
    args: Sequence[str], env: dict[str, str], log_path: Path, timeout: float = 1800
) -> dict[str, Any]:
    """Run a Python child (`-m module ...`); its result is the stdout line after MARK (or the
    last stdout line that is a JSON object). Its stderr goes to `log_path`."""
    with log_path.open("a") as err:
        done = subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=timeout,
        )
    lines = done.stdout.splitlines()
    for line in reversed(lines):
        text = line[len(MARK) :] if line.startswith(MARK) else line
        if text.startswith("{"):
            if done.returncode != 0:
                break
            return dict(json.loads(text))
    raise RuntimeError(
        f"{' '.join(args)} exited {done.returncode}; see {log_path}\n{done.stdout[-2000:]}"
    )


@dataclass
class Series:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, unit: str = "s", digits: int = 2) -> str:
        if not self.values:
            return "—"
        return (
            f"{self.median:.{digits}f} {unit} ({self.low:.{digits}f}–{self.high:.{digits}f}, "
            f"n={len(self.values)})"
        )


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_for_quiet(limit: float, max_wait_s: float) -> tuple[float, float]:
    """Wait (bounded) until the 1-minute load average is below `limit`; returns (load, waited)."""
    started = time.monotonic()
    while True:
        load = load_average()[0]
        waited = time.monotonic() - started
        if load < limit or waited >= max_wait_s:
            return load, waited
        log(f"load average {load:.2f} ≥ {limit}: waiting (up to {max_wait_s - waited:.0f} s more)")
        time.sleep(min(30.0, max(1.0, max_wait_s - waited)))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    import prefect

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "prefect": prefect.__version__,
    }


def disk_free_gib(path: Path) -> float:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize / 1024**3
