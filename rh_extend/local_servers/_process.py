"""Child processes of the local servers: free ports, waits with a deadline, a clean environment,
and a started process with its log, the tail of that log, and a stop that always ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

# Nothing here may phone home: this machine reaches no network beyond package registries.
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
# A child gets these settings only from what its starter passes, never from the caller's shell.
SETTING_PREFIXES = ("PREFECT_", "RH_EXTEND_", "RUNNINGHUB_", "AWS_")
STOP_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 10.0


class ServerDied(RuntimeError):
    """A server exited while it was being started or waited for; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.25) -> Any:
    """Poll `probe` until it returns something truthy, and return that.

    Raises TimeoutError naming `what` after `timeout_s`; a probe fails the wait at once by raising
    (`Process.check_alive` does, when the server being waited for has died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Prefect, rh-extend, RunningHub or AWS settings, quiet,
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    return {**env, **QUIET, **extra}


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session=True: it and its
    children), SIGKILL it after `timeout_s`.

    A leader that has exited but was not reaped yet still holds its group id, so its leftover
    children are signalled too; once reaped, the id may belong to someone else and is left be."""
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=KILL_TIMEOUT_S)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit in this (main) thread, so `finally` blocks and context
    managers stop the servers this process started before it goes."""

    def leave(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


@dataclass
class Process:
    """A child in a session of its own, its stdout and stderr in `log` (stderr only, with pipes)."""

    name: str
    proc: subprocess.Popen[Any]
    log: Path

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def exited(self) -> bool:
        """Whether it has exited, without reaping it (see `stop_process`)."""
        if self.proc.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            return os.waitid(os.P_PID, self.proc.pid, flags) is not None
        except ChildProcessError:
            return self.proc.poll() is not None

    def check_alive(self) -> bool:
        """True while it runs; once it has exited, stop what it left and raise ServerDied."""
        if not self.exited():
            return True
        self.stop()
        raise ServerDied(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def wait_for(
        self, what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.25
    ) -> Any:
        """`wait_for` that fails at once if this process dies; both failures end with its log."""

        def alive_and() -> Any:
            self.check_alive()
            return probe()

        try:
            return wait_for(what, alive_and, timeout_s, every_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {self.name}'s log ends:\n{self.tail()}") from None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        stop_process(self.proc, timeout_s)

    @property
    def stdin(self) -> IO[str]:
        assert self.proc.stdin is not None, f"{self.name} was started without pipes"
        return self.proc.stdin

    @property
    def stdout(self) -> IO[str]:
        assert self.proc.stdout is not None, f"{self.name} was started without pipes"
        return self.proc.stdout

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_process(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    pipes: bool = False,
) -> Process:
    """Start `args` in a session of its own (so `stop` reaches its children), output to `log`.

    With `pipes`, its stdin and stdout are text pipes to this process and only stderr goes to
    `log`. Nothing runs between fork and exec (no preexec_fn)."""
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else handle,
            stderr=handle if pipes else subprocess.STDOUT,
            text=pipes,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name, proc, log)
