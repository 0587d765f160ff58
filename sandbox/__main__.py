"""`python -m sandbox --port N [--host 127.0.0.1] [--public-url URL]`: serve the sandbox."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .config import DEFAULT_API_KEY, SandboxConfig
from .server import SandboxServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    p.add_argument("--port", type=int, default=8000, help="0 = any free port (default 8000)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--public-url",
        default=None,
        help="base of the links handed out (default: the bound address)",
    )
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help=f"accepted key (repeatable; default {DEFAULT_API_KEY})",
    )
    p.add_argument("--queue-seconds", type=float, default=2.0)
    p.add_argument("--run-seconds", type=float, default=5.0)
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--concurrency-limit", type=int, default=3)
    p.add_argument("--balance", type=float, default=None, help="CNY; default unlimited")
    p.add_argument("--url-ttl-seconds", type=float, default=86400.0)
    p.add_argument("--data-dir", default=None, help="default: a temp dir removed at exit")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SandboxConfig(
        api_keys=set(args.api_keys or [DEFAULT_API_KEY]),
        public_url=args.public_url,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        time_scale=args.time_scale,
        concurrency_limit=args.concurrency_limit,
        balance=args.balance,
        url_ttl_seconds=args.url_ttl_seconds,
        data_dir=args.data_dir,
    )
    server = SandboxServer(config, host=args.host, port=args.port, log_level=args.log_level)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    server.start()
    print(f"RunningHub sandbox listening on {server.base_url}", flush=True)
    print(f"links use {server.public_url}; control API at {server.base_url}/_sandbox/", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
