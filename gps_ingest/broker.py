"""The embedded MQTT broker that ``xiaoche serve``/``demo`` start when no broker is configured.

Mosquitto when its binary is on ``PATH`` (or in ``/usr/sbin``): a subprocess with a config file
generated in ``data_dir``, persistence on, queues large enough for a fleet's backlog. Otherwise
amqtt 0.12, also in a subprocess (``python -m gps_ingest.broker``) so that stopping and starting it
in one process leaves no event loop, thread or warning behind.

What amqtt 0.12.1 does and does not do (read from its source, checked by the tests):

- MQTT 3.1.1 only: an MQTT 5 CONNECT is answered with CONNACK 0x01 (unacceptable protocol
  version); no shared subscriptions (``$share/...`` is an ordinary topic filter to it).
- Persistent sessions (``clean_session=False``) are kept **in memory only**, and only for
  sessions it does not mark anonymous: its stock ``AnonymousAuthPlugin`` marks every client
  anonymous and then drops its session (and queued messages) one second after a disconnect. We
  therefore install :class:`OpenAuthPlugin`, which lets everybody in without that mark, so a
  restarted ingest gets the pings published while it was down. A broker restart loses them.
- Unacknowledged QoS 1 messages of a resumed session are resent on reconnect.
- No per-client in-flight limit, about 1 k QoS 1 msg/s: fine for a demo, not for load.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
# Mosquitto's per-client limits. The queue is what a stopped ingest finds when it comes back
# (the default 1000 would drop a few seconds of a fleet's pings); the in-flight window is what
# an MQTT 3.1.1 subscriber that acks after commit may hold unacked (MQTT 5 clients set their own
# with Receive Maximum).
MOSQUITTO_MAX_QUEUED_MESSAGES = 1_000_000
MOSQUITTO_MAX_INFLIGHT_MESSAGES = 1000


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


class BrokerPortInUse(BrokerError):
    """Something already listens on the requested address; the caller may pick another port."""


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the brokers do
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the broker gets SIGTERM when the thread that started it dies (also on kill -9)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class EmbeddedBroker:
    """A broker subprocess on a loopback address, with its files in ``data_dir``.

    >>> with EmbeddedBroker(port=0, data_dir=tmp) as broker:   # doctest: +SKIP
    ...     client = MqttIngestClient(broker.url, ...)

    ``port=0`` picks a free port. ``prefer`` is ``"auto"`` (Mosquitto if installed, else amqtt),
    ``"mosquitto"`` or ``"amqtt"``. ``passwd_file``/``acl_file`` are Mosquitto files (as written by
    ``xiaoche broker-config``); with a password file anonymous clients are refused. amqtt ignores the
    ACL file and can only check argon2/bcrypt password hashes, not Mosquitto's.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        data_dir: Path | None = None,
        passwd_file: Path | None = None,
        acl_file: Path | None = None,
        prefer: str = "auto",
    ) -> None:
        if prefer not in ("auto", "mosquitto", "amqtt"):
            raise ValueError(f"prefer must be auto, mosquitto or amqtt, not {prefer!r}")
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.passwd_file = passwd_file
        self.acl_file = acl_file
        self.prefer = prefer
        self._binary = _mosquitto_binary() if prefer != "amqtt" else None
        if prefer == "mosquitto" and self._binary is None:
            raise BrokerError("prefer='mosquitto' but no mosquitto binary is installed")
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._tmp_dir: Any = None

    # --- public -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "mosquitto" if self._binary else "amqtt"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and block until its port accepts connections.

        Raises :class:`BrokerPortInUse` if the port is taken, :class:`BrokerError` if the broker
        exits or does not listen within ``START_TIMEOUT_S``.
        """
        if self.running:
            return
        if self.data_dir is None:
            import tempfile

            self._tmp_dir = tempfile.TemporaryDirectory(prefix="xiaoche-broker-")
            self.data_dir = Path(self._tmp_dir.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pick_port = self.port == 0
        for _attempt in range(3 if pick_port else 1):
            if pick_port:
                self.port = _free_port(self.host)
            elif not _port_is_free(self.host, self.port):
                raise BrokerPortInUse(f"{self.host}:{self.port} is already in use")
            try:
                self._spawn_and_wait()
                return
            except BrokerPortInUse:
                if not pick_port:
                    raise
        raise BrokerError(f"could not find a free port on {self.host} for the broker")

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and reap it; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        elif process is not None:
            process.wait()
        if process is not None and process.stdin is not None:
            process.stdin.close()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._tmp_dir is not None:
            self._tmp_dir.cleanup()
            self._tmp_dir = None
            self.data_dir = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.kind}, {self.url}, running={self.running})"

    # --- internals ----------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / f"{self.kind}.log"

    def _command(self) -> list[str]:
        assert self.data_dir is not None
        if self._binary:
            conf = self.data_dir / "mosquitto.conf"
            conf.write_text(self._mosquitto_config(), encoding="utf-8")
            return [self._binary, "-c", str(conf)]
        command = [sys.executable, "-m", "gps_ingest.broker", "--host", self.host,
                   "--port", str(self.port)]
        if self.passwd_file is not None:
            command += ["--passwd-file", str(self.passwd_file)]
        return command

    def _mosquitto_config(self) -> str:
        assert self.data_dir is not None
        persistence = self.data_dir / "mosquitto-data"
        persistence.mkdir(exist_ok=True)
        lines = [
            "# generated by gps_ingest.broker; rewritten at every start",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.passwd_file else 'true'}",
            "persistence true",
            f"persistence_location {persistence}/",
            "autosave_interval 60",
            f"max_queued_messages {MOSQUITTO_MAX_QUEUED_MESSAGES}",
            f"max_inflight_messages {MOSQUITTO_MAX_INFLIGHT_MESSAGES}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else Mosquitto drops to `mosquitto`, who can't write here
        if self.passwd_file is not None:
            lines.append(f"password_file {Path(self.passwd_file).resolve()}")
        if self.acl_file is not None:
            lines.append(f"acl_file {Path(self.acl_file).resolve()}")
        return "\n".join(lines) + "\n"

    def _spawn_and_wait(self) -> None:
        assert self.data_dir is not None
        command = self._command()
        if self._log_handle is not None:
            self._log_handle.close()
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # amqtt's child exits when this closes (parent gone)
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            # out of the terminal's process group: a Ctrl-C is for `serve`, which drains and acks
            # its last batch and then stops the broker; the broker must not go first
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._log_tail()
                self.stop()
                if "in use" in output.lower():
                    raise BrokerPortInUse(f"{self.host}:{self.port} is already in use: {output}")
                raise BrokerError(f"{self.kind} exited at start-up: {output}")
            if _accepts_connections(self.host, self.port):
                log.info("embedded %s broker on %s (pid %d)", self.kind, self.url,
                         self._process.pid)
                return
            time.sleep(0.05)
        output = self._log_tail()
        self.stop()
        raise BrokerError(f"{self.kind} did not listen on {self.url} within "
                          f"{START_TIMEOUT_S:.0f} s: {output}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""


# --- amqtt, run as ``python -m gps_ingest.broker`` -------------------------------------------
def _amqtt_plugin_base() -> Any:
    from amqtt.plugins.base import BaseAuthPlugin

    return BaseAuthPlugin


def amqtt_config(host: str, port: int, passwd_file: Path | None = None) -> dict[str, Any]:
    """amqtt 0.12's config dict: ``listeners`` + ``plugins`` keyed by dotted class path."""
    plugins: dict[str, Any] = {}
    if passwd_file is not None:
        plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {
            "password_file": str(passwd_file)}
    else:
        plugins["gps_ingest.broker.OpenAuthPlugin"] = {}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "timeout_disconnect_delay": 0,
        "plugins": plugins,
    }


def __getattr__(name: str) -> Any:
    # OpenAuthPlugin subclasses an amqtt class; build it only when amqtt loads it, so importing
    # this module (for the Mosquitto path) never imports amqtt.
    if name == "OpenAuthPlugin":
        base = _amqtt_plugin_base()

        class OpenAuthPlugin(base):  # type: ignore[misc, valid-type]
            """Let every client in without marking it anonymous, so amqtt keeps its session."""

            async def authenticate(self, *, session: Any) -> bool:
                return True

        globals()["OpenAuthPlugin"] = OpenAuthPlugin
        return OpenAuthPlugin
    raise AttributeError(name)


def _run_amqtt(host: str, port: int, passwd_file: Path | None) -> None:
    import asyncio
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)
    from amqtt.broker import Broker

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def parent_gone() -> None:  # stdin reaches EOF when the parent process is gone
            try:
                data = os.read(stdin_fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(stdin_fd)
                stop.set()

        stdin_fd = sys.stdin.fileno()
        loop.add_reader(stdin_fd, parent_gone)
        broker = Broker(amqtt_config(host, port, passwd_file))
        await broker.start()
        print(f"amqtt listening on {host}:{port}", flush=True)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="xiaoche's embedded amqtt broker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--passwd-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    _run_amqtt(args.host, args.port, args.passwd_file)


if __name__ == "__main__":
    main()
