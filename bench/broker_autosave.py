"""What Mosquitto's `autosave_interval 1` (xiaoche broker-config's default) costs with a backlog.

A persistent QoS 1 session (an ingest that is away) gets N messages queued; then the broker's CPU
is sampled for 10 s while it sits with that backlog, and the size of mosquitto.db is printed.
Run once with the default 1800 and once with 1:

    .venv/bin/python bench/broker_autosave.py --autosave 1800
    .venv/bin/python bench/broker_autosave.py --autosave 1

``--crash N`` measures instead what a broker crash loses (issue 17 item 2): with broker-config's
persistence settings, devices publish QoS 1 at ``--rate`` msg/s to an ingest that is away (its
persistent session queues them), the broker is killed (SIGKILL) at a random moment, started
again on its files, and the ingest drains its session: the acknowledged messages that never
arrive are the loss, counted and expressed as how many seconds of acknowledged stream they were.
N rounds; the median and the worst are printed:

    .venv/bin/python bench/broker_autosave.py --crash 10

Runs Mosquitto as the current user on a free loopback port in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.broker_config import DEFAULT_AUTOSAVE_S

PAYLOAD = (b'{"ts":1700000000,"lat":27.12345,"lon":113.12345,"speed_kmh":31.5,"heading_deg":182,'
           b'"accuracy_m":8}' + b" " * 50)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(parts[13]) + int(parts[14])) / os.sysconf("SC_CLK_TCK")


def write_conf(folder: Path, port: int, autosave_s: int) -> Path:
    """broker-config's persistence lines (backend/broker_config.py), anonymous on loopback."""
    conf = folder / "m.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {folder}/\nautosave_interval {autosave_s}\n"
        "max_queued_messages 100000\n" + ("user root\n" if os.geteuid() == 0 else ""))
    return conf


def start_broker(conf: Path, port: int) -> subprocess.Popen:
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def session_client(port: int, client_id: str, received: list[int] | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if received is not None:
        client.on_message = lambda c, u, m: received.append(int(m.payload.split(b" ", 1)[0]))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe("x/#", qos=1)
    time.sleep(0.3)
    return client


def crash_round(autosave_s: int, rate: int, seed: int) -> tuple[int, int, float]:
    """One broker kill: (acknowledged, lost, seconds of acknowledged stream lost)."""
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="xiaoche-crash-"))
    port = free_port()
    conf = write_conf(folder, port, autosave_s)
    broker = start_broker(conf, port)
    try:
        away = session_client(port, "bench-ingest")
        away.disconnect()
        away.loop_stop()
        acked: dict[int, float] = {}
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices",
                          protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        seq_of: dict[int, int] = {}
        pub.on_publish = lambda c, u, mid, rc, p: acked.setdefault(seq_of[mid], time.time())
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        kill_at = time.time() + rng.uniform(3.0, 6.0)
        seq = 0
        while time.time() < kill_at:
            began = time.time()
            for _ in range(rate // 100):
                info = pub.publish(f"x/dev{seq % 100}/pings", str(seq).encode() + b" " + PAYLOAD,
                                   qos=1)
                seq_of[info.mid] = seq
                seq += 1
            time.sleep(max(0.0, 0.01 - (time.time() - began)))
        broker.kill()  # SIGKILL: no clean stop, nothing written
        killed_at = time.time()
        broker.wait()
        pub.loop_stop()
        acknowledged = {s: t for s, t in acked.items() if t <= killed_at}
        broker = start_broker(conf, port)
        received: list[int] = []
        back = session_client(port, "bench-ingest", received)
        deadline = time.time() + 30
        last = -1
        while time.time() < deadline:  # until the drain goes quiet
            time.sleep(0.5)
            if len(received) == last:
                break
            last = len(received)
        back.disconnect()
        back.loop_stop()
        lost = set(acknowledged) - set(received)
        span = killed_at - min(acknowledged[s] for s in lost) if lost else 0.0
        return len(acknowledged), len(lost), span
    finally:
        broker.kill()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def crash(rounds: int, autosave_s: int, rate: int) -> None:
    results = [crash_round(autosave_s, rate, seed) for seed in range(rounds)]
    for acknowledged, lost, span in results:
        print(f"  acknowledged {acknowledged}, lost {lost} (the last {span:.2f} s before the kill)")
    spans = sorted(span for _a, _l, span in results)
    losses = sorted(lost for _a, lost, _s in results)
    print(f"autosave_interval {autosave_s}, {rate} msg/s, {rounds} kill -9 of the broker: lost "
          f"median {statistics.median(losses):.0f} / worst {losses[-1]} acknowledged messages, "
          f"the last median {statistics.median(spans):.2f} s / worst {spans[-1]:.2f} s of the "
          "stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autosave", type=int, default=DEFAULT_AUTOSAVE_S)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--crash", type=int, default=0, metavar="ROUNDS",
                        help="measure the loss of ROUNDS broker kills instead")
    parser.add_argument("--rate", type=int, default=1000, help="msg/s published (--crash)")
    args = parser.parse_args()
    if args.crash:
        crash(args.crash, args.autosave, args.rate)
        return
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
