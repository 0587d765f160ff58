"""Local servers for the demo, the tests, the scripts and the benchmarks, one kit for all:

- `embedded`: the sandbox and moto's S3 server with the local bucket (`local_servers()`);
- `sandbox`, `s3`: each of those on its own, and the settings that point rh-extend at it;
- `postgres`: a throwaway PostgreSQL cluster; `prefect_server`: `prefect server start` on
  SQLite or on such a cluster;
- `_process`: free ports, waits with a deadline, a clean environment, child processes with a
  log tail and a stop that always ends.

Every wait has a deadline, a server that dies while being waited for fails the wait at once with
the end of its log, and whatever was started is stopped on exit, exceptions included.
"""

from rh_extend.local_servers._process import (
    Process,
    ServerDied,
    clean_env,
    exit_on_sigterm,
    free_port,
    start_process,
    stop_process,
    wait_for,
)
from rh_extend.local_servers.embedded import LocalServers, environment, local_env, local_servers
from rh_extend.local_servers.postgres import PostgresCluster, pg_bin, throwaway_postgres
from rh_extend.local_servers.prefect_server import PrefectServer
from rh_extend.local_servers.s3 import (
    LOCAL_BUCKET,
    LOCAL_REGION,
    moto_process,
    moto_thread,
    s3_client,
    s3_env,
)
from rh_extend.local_servers.sandbox import LOCAL_API_KEY, local_sandbox, sandbox_env

__all__ = [
    "LOCAL_API_KEY",
    "LOCAL_BUCKET",
    "LOCAL_REGION",
    "LocalServers",
    "PostgresCluster",
    "PrefectServer",
    "Process",
    "ServerDied",
    "clean_env",
    "environment",
    "exit_on_sigterm",
    "free_port",
    "local_env",
    "local_sandbox",
    "local_servers",
    "moto_process",
    "moto_thread",
    "pg_bin",
    "s3_client",
    "s3_env",
    "sandbox_env",
    "start_process",
    "stop_process",
    "throwaway_postgres",
    "wait_for",
]
