"""A QoS 1 publisher that keeps its own window of unacknowledged messages.

For the device simulator, the tests and the benchmarks. paho's built-in in-flight limit made a QoS
1 publisher crawl (≈ 4.4 k msg/s, DESIGN.md); keeping about a thousand publishes unacknowledged and
blocking only when that window is full lets it go as fast as the broker and this process allow.

>>> with WindowedPublisher("mqtt://127.0.0.1:1883") as publisher:    # doctest: +SKIP
...     for topic, payload in messages:
...         publisher.publish(topic, payload)
...     publisher.flush()
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType

from gps_ingest.mqtt_client import PublishConnection


class PublishTimeout(TimeoutError):
    """Some publishes were not acknowledged in time."""


class WindowedPublisher:
    """Publishes with at most ``window`` QoS 1 messages unacknowledged; not thread-safe."""

    def __init__(self, url: str, client_id: str | None = None, window: int = 1000,
                 protocol: str = "auto", username: str | None = None,
                 password: str | None = None) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.published = 0
        self._connection: PublishConnection | None = PublishConnection(
            url, client_id=client_id or f"xiaoche-pub-{uuid.uuid4().hex[:12]}",
            protocol=protocol, username=username, password=password)

    @property
    def protocol(self) -> str:
        return self._open().protocol

    @property
    def unacked(self) -> int:
        return self._open().unacked

    def _open(self) -> PublishConnection:
        if self._connection is None:
            raise RuntimeError("the publisher is closed")
        return self._connection

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish; blocks while ``window`` publishes are waiting for their PUBACK."""
        connection = self._open()
        while connection.unacked >= self.window:
            connection.pump(0.05)
        connection.publish(topic, payload, qos)
        self.published += 1

    def publish_many(self, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        count = 0
        for topic, payload in messages:
            self.publish(topic, payload, qos)
            count += 1
        return count

    def flush(self, timeout: float = 30) -> None:
        """Wait until every publish is acknowledged; :class:`PublishTimeout` otherwise."""
        connection = self._open()
        deadline = time.monotonic() + timeout
        while connection.unacked:
            if time.monotonic() > deadline:
                raise PublishTimeout(f"{connection.unacked} publishes not acknowledged within "
                                     f"{timeout} s")
            connection.pump(0.05)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> WindowedPublisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def numbered_stream(prefix: str, count: int, devices: int = 50,
                    payload_bytes: int = 150) -> Iterator[tuple[str, bytes]]:
    """``count`` ping-like messages on ``{prefix}/devices/d{n}/pings``, payloads ≈ ``payload_bytes``.

    Each payload starts with its sequence number (``{"seq": 17, ...}``) so a consumer can check
    that every message arrived; devices take turns, as a fleet's pings interleave.
    """
    pad = "x" * max(0, payload_bytes - 60)
    for seq in range(count):
        device = seq % devices
        yield (f"{prefix}/devices/d{device}/pings",
               f'{{"seq": {seq}, "ts": {1_700_000_000 + seq}, "lat": 27.4, "lon": 113.2, '
               f'"pad": "{pad}"}}'.encode())


def publish_stream(url: str, prefix: str, count: int, rate: float = 0, window: int = 1000,
                   protocol: str = "auto") -> float:
    """Publish :func:`numbered_stream` and wait for every PUBACK; msg/s achieved.

    ``rate`` > 0 paces the stream to about that many messages per second.
    """
    started = time.perf_counter()
    with WindowedPublisher(url, window=window, protocol=protocol) as publisher:
        for seq, (topic, payload) in enumerate(numbered_stream(prefix, count)):
            if rate > 0:
                ahead = started + seq / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            publisher.publish(topic, payload)
        publisher.flush(timeout=300)
    return count / (time.perf_counter() - started)


def publish_stream_in_subprocess(url: str, prefix: str, count: int, rate: float = 0,
                                 protocol: str = "auto") -> subprocess.Popen[bytes]:
    """The same in a child process (no GIL shared with a subscriber); prints msg/s on exit."""
    return subprocess.Popen(
        [sys.executable, "-m", "gps_ingest.publisher", url, "--prefix", prefix, "--count",
         str(count), "--rate", str(rate), "--protocol", protocol],
        stdout=subprocess.PIPE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="publish a numbered QoS 1 test stream")
    parser.add_argument("url")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=0, help="msg/s; 0 = as fast as possible")
    parser.add_argument("--protocol", default="auto")
    args = parser.parse_args(argv)
    print(f"{publish_stream(args.url, args.prefix, args.count, args.rate, protocol=args.protocol):.0f}",
          flush=True)


if __name__ == "__main__":
    main()
