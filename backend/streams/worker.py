"""gunicorn's worker class for ``xiaoche api``: uvicorn's event loop serving :class:`XiaocheAsgi`.

``gunicorn -k backend.streams.worker.StreamWorker backend.wsgi:app`` loads the WSGI app as
usual (the Flask app with ``/live``'s fast path) and serves it through
``backend.streams.asgi.XiaocheAsgi``: ``/api/v1/stream`` on the event loop, everything else in
``--threads`` threads per worker — or, under ``xiaoche api`` (``backend.streams.gunicorn_conf``),
each stream handed to a stream process of its own. gunicorn keeps what it is good at (binding, forking, restarting
workers, ``--timeout``); the access log is ours (the path without its query string).
"""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from backend.streams.asgi import XiaocheAsgi, access_log, raise_open_files_limit
from backend.streams.gunicorn_conf import stream_processes
from backend.streams.handoff import Handoff


class _Server(Server):
    """Ends the open streams first on shutdown: they would otherwise hold it until their end."""

    async def shutdown(self, sockets=None) -> None:
        app = self.config.app
        if isinstance(app, XiaocheAsgi):
            app.end_streams()
        await super().shutdown(sockets=sockets)


class StreamWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "interface": "asgi3", "lifespan": "off",
                     "access_log": False, "timeout_graceful_shutdown": 5}

    def init_process(self) -> None:
        raise_open_files_limit()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi
        if not isinstance(app, Flask):
            raise TypeError(f"StreamWorker serves xiaoche's Flask app (backend.wsgi:app), "
                            f"not {app!r}")
        logs_access = bool(self.cfg.accesslog)
        if logs_access:
            access_log.handlers = self.log.access_log.handlers
            access_log.setLevel(logging.INFO)
            access_log.propagate = False
        self.wsgi = XiaocheAsgi(app, rest_threads=max(4, self.cfg.threads),
                                log_access=logs_access,
                                handoff=Handoff.from_env(os.environ, stream_processes()))

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = _Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
