"""A minimal ingest for the crash test: each batch's payloads go to a file, fsynced, before acking.

    python -m tests.integration.mqtt.crash_consumer URL CLIENT_ID TOPIC OUT_FILE
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from gps_ingest.mqtt_client import InboundMessage, MqttIngestClient


def main() -> None:
    url, client_id, topic, out_path = sys.argv[1:5]
    out = open(out_path, "ab")  # noqa: SIM115 (lives as long as the process)

    def commit(batch: list[InboundMessage]) -> None:
        out.write(b"".join(m.payload + b"\n" for m in batch))
        out.flush()
        os.fsync(out.fileno())

    client = MqttIngestClient(url, client_id=client_id, topics=[topic], handle_batch=commit,
                              session_expiry_s=120, reconnect_min_s=0.2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.start()
    print("ready", flush=True)
    stop.wait()
    client.stop()
    out.close()


if __name__ == "__main__":
    main()
