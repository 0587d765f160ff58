"""A throwaway PostgreSQL cluster on 127.0.0.1 for a Prefect server: initdb, pg_ctl, one
database; stopped and its folder deleted on exit, exceptions included."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rh_extend.local_servers._process import ServerDied, free_port

COMMAND_TIMEOUT_S = 120.0  # initdb, or pg_ctl's own 60 s wait for start or stop
USER = "prefect"
DATABASE = "prefect"


def pg_bin(name: str) -> str:
    """Where PostgreSQL's `name` program is: on PATH, else Debian's newest versioned folder."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {name} not found: apt-get install -y postgresql (or put its bin on PATH)"
        )
    return found


class PostgresCluster:
    """A cluster in `root/pg`, trust auth, listening on 127.0.0.1 only; run as the `postgres`
    user when this process is root (initdb refuses root), so `root` must be reachable by it."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.log = root / "pg.log"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            root.chmod(0o755)

    def start(self) -> str:
        """Create and start the cluster and its database; return its Prefect database URL."""
        self.data.mkdir()
        self.log.touch()
        if self.as_user:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        # A throwaway cluster: durability buys nothing, fsync only slows the tests down.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c max_connections=200"
            " -c fsync=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self.url

    def stop(self) -> None:
        """Stop the server if it runs: a fast shutdown, else an immediate one, else SIGKILL."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        for mode in ("fast", "immediate"):
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
                return
            except ServerDied:
                continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # its backends exit on their own once they notice the postmaster is gone
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_user, pg_bin(program), *args]
        try:
            subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
            )
        except subprocess.CalledProcessError as exc:
            message = f"{program} failed ({exc.returncode}): {exc.stderr}{self._tail()}"
            raise ServerDied(message) from None
        except subprocess.TimeoutExpired:
            message = f"{program} took over {COMMAND_TIMEOUT_S:.0f} s{self._tail()}"
            raise ServerDied(message) from None

    def _tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\nPostgreSQL's log ends:\n" + "\n".join(text.splitlines()[-lines:])


@contextmanager
def throwaway_postgres(name: str) -> Iterator[str]:
    """A cluster in a fresh folder under the system temp dir (which the `postgres` user can
    reach, unlike pytest's private tmp folders); yields its Prefect database URL; stopped and
    deleted at the end."""
    root = Path(tempfile.mkdtemp(prefix=f"rh-extend-pg-{name}-"))
    cluster = PostgresCluster(root)
    try:
        yield cluster.start()
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
