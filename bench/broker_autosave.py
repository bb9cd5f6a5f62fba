"""What Mosquitto's `autosave_interval 1` (xiaoche broker-config's default) costs with a backlog.

A persistent QoS 1 session (an ingest that is away) gets N messages queued; then the broker's CPU
is sampled for 10 s while it sits with that backlog, and the size of mosquitto.db is printed.
Run once with the default 1800 and once with 1:

    .venv/bin/python bench/broker_autosave.py --autosave 1800
    .venv/bin/python bench/broker_autosave.py --autosave 1

Runs Mosquitto as the current user on a free loopback port in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PAYLOAD = (b'{"ts":1700000000,"lat":27.12345,"lon":113.12345,"speed_kmh":31.5,"heading_deg":182,'
           b'"accuracy_m":8}' + b" " * 50)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(parts[13]) + int(parts[14])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autosave", type=int, default=1)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xiaoche-autosave-"))
    port = free_port()
    (folder / "m.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {folder}/\nautosave_interval {args.autosave}\n"
        "max_queued_messages 200000\n" + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen(["mosquitto", "-c", str(folder / "m.conf")],
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        away = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ingest",
                           protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        away.connect("127.0.0.1", port, clean_start=False, properties=props)
        away.loop_start()
        away.subscribe("x/#", qos=1)
        time.sleep(0.5)
        away.disconnect()
        away.loop_stop()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices",
                          protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        began = time.time()
        for start in range(0, args.messages, 500):
            infos = [pub.publish(f"x/dev{i % 100}/pings", PAYLOAD, qos=1)
                     for i in range(start, min(args.messages, start + 500))]
            for info in infos:
                info.wait_for_publish(60)
        took = time.time() - began
        before = cpu_s(broker.pid)
        time.sleep(10)
        share = (cpu_s(broker.pid) - before) / 10
        store = folder / "mosquitto.db"
        size = store.stat().st_size if store.exists() else 0
        print(f"autosave_interval {args.autosave}: {args.messages} messages queued at "
              f"{args.messages / took:,.0f}/s (acknowledged); then, idle with the backlog, the "
              f"broker used {100 * share:.0f} % of a core; mosquitto.db {size / 1e6:.1f} MB")
        pub.disconnect()
        pub.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
