"""An ASGI app served by a real uvicorn on a loopback port from a background thread.

Used by `glue dev` (the local API, the Messages API stand-in), the benchmarks and the tests.
The socket is bound here, before uvicorn starts, so port 0 means a free port chosen by the
kernel and known at once, with no window in which another process could take it.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp

_Server = TypeVar("_Server", bound="BackgroundServer")


class BackgroundServer:
    """uvicorn serving `app` on 127.0.0.1:`port` (0: any free port) in a daemon thread."""

    def __init__(self, app: ASGIApp, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, lifespan="on", ws="none", proxy_headers=False, access_log=False, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start serving and return once uvicorn has started (its lifespan startup included)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.base}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
