"""The HTTP server of ``xiaoche serve`` and ``demo``: uvicorn in this process, on one port."""

from __future__ import annotations

import signal
import socket

import uvicorn
from flask import Flask

from backend.streams.asgi import XiaocheAsgi, raise_open_files_limit
from backend.streams.worker import _Server


class HttpServer:
    """The whole API (``XiaocheAsgi``) on ``host:port``, bound at construction (port 0: a free
    one, in :attr:`port`); :meth:`run` serves until SIGINT or SIGTERM."""

    def __init__(self, app: Flask, host: str, port: int, rest_threads: int = 32):
        raise_open_files_limit()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise SystemExit(
                f"xiaoche: cannot listen on {host}:{port} ({exc.strerror}): another program — "
                f"perhaps another xiaoche — uses it; stop it, or pass --port with a free port"
            ) from exc
        self.socket.listen(2048)
        self.port = self.socket.getsockname()[1]
        self.app = XiaocheAsgi(app, rest_threads=rest_threads)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                interface="asgi3", timeout_graceful_shutdown=3)
        self.server = _Server(config)

    def run(self) -> None:
        # uvicorn hands the signal that stopped it on to the handler found at its start: keep
        # SIGTERM's from killing the process before serve's own clean-up ran
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            self.server.run(sockets=[self.socket])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.socket.close()
