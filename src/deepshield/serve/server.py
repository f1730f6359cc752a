"""Running the app: ``serve`` in the foreground (the CLI), ``BackgroundServer`` in a thread (tests,
benchmarks) on a free localhost port.

    >>> with BackgroundServer(create_app(cfg)) as server:
    ...     httpx.get(f"{server.url}/api/health").json()["status"]       # "ok"
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time

from deepshield.config import ServeConfig

MAX_CONNECTIONS = 64   # uvicorn answers 503 beyond this many open connections
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(cfg: ServeConfig) -> None:
    """Load the model, then serve the page and API on ``cfg.host:cfg.port`` until Ctrl-C."""
    import uvicorn

    from deepshield.serve.app import create_app

    # On loopback only loopback Host headers are answered (DNS rebinding); on a network address, any.
    app = create_app(cfg, hosts=LOOPBACK_HOSTS if _is_loopback(cfg.host) else None)
    if not _is_loopback(cfg.host):
        print(f"deepshield serve: warning: listening on {cfg.host}: anyone who can reach this machine can "
              "upload files and use its CPU; there is no login", file=sys.stderr)
    print(f"deepshield serve: http://{cfg.host}:{cfg.port}/ (API docs at /docs; model {cfg.checkpoint}, "
          f"uploads up to {cfg.max_upload_mb:g} MB, {cfg.queue_limit} jobs queued at most, "
          f"{cfg.job_timeout:g} s per job); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", limit_concurrency=MAX_CONNECTIONS)


class BackgroundServer:
    """uvicorn serving ``app`` in a daemon thread on ``host`` and a free port (``url`` once started)."""

    def __init__(self, app, host: str = "127.0.0.1", start_timeout_s: float = 30.0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                                    limit_concurrency=MAX_CONNECTIONS))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


__all__ = ["BackgroundServer", "serve"]
