"""JT/T 808 gateway throughput: terminals on loopback → ``xiaoche jt808`` → PostgreSQL.

    .venv/bin/python bench/jt808.py [--terminals 1000] [--positions 20] [--window 4]
                                    [--idle 0] [--runs 1] [--mqtt-rate PINGS_PER_S]
                                    [--texts 0]
                                    [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Numbers only, no assertions (except that every answered position must be stored: a run that
loses positions is reported as LOST). Loopback only.

1. A fresh database ``xiaoche_bench_jt808`` (dropped and created), migrated, with a bundle of
   ``--terminals`` school buses, each with a device whose ``jt808_phone`` is ``1380000NNNN``
   (no routes: the "plain" fleet of bench/ingest.py, tracking on as shipped).
2. The real ``xiaoche jt808`` process (``.venv/bin/xiaoche``, a subprocess; env
   ``XIAOCHE_DATABASE_URL``, ``XIAOCHE_MAX_PING_AGE_S=0``) on a free loopback port.
3. This process opens ``--terminals`` TCP connections (asyncio), each registers (0x0100 →
   0x8100 auth code) and authenticates (0x0102); ``--idle`` more connect and only send
   heartbeats (connections that cost memory but send nothing). The gateway's resident memory
   (``/proc/PID/status`` VmRSS) is read before, with all connected, and after the stream.
4. Every terminal sends ``--positions`` 0x0200 locations (5 s apart in event time, a bus
   driving), at most ``--window`` unanswered at a time, as a terminal with a backlog does: the
   next goes out when an answer (0x8001, sent after commit) comes back. Rate = positions /
   (first sent → last answered), measured by the client, so it includes the answer path.
5. ``count(*)`` of ``pings`` must equal what was answered, and ``rejects`` must be empty.

``--texts N``: as the stream begins, N texts to the drivers (0x8300) are queued in the database
(``jt808_texts``, as ``POST /vehicles/{id}/texts`` does) for N different terminals; each
terminal answers its text (0x0001) as it reads it. Printed: the delay from queueing to the
terminal reading it (median, max: the gateway's poll, ``XIAOCHE_JT808_TEXT_POLL_S``, plus
the claim), and how many texts the database then says are ``ok``.

``--mqtt-rate``: the MQTT ingest's single-ping rate on the same machine (bench/ingest.py,
"(b) ingest single, tracking on, plain"), to print the ratio; the issue's goal is ≥ 0.6.
Results also go to ``bench/results/jt808-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gps_ingest.jt808.frame import Frame, FrameReader, encode_frame  # noqa: E402
from gps_ingest.jt808.messages import (  # noqa: E402
    AUTHENTICATION,
    GENERAL_RESPONSE,
    HEARTBEAT,
    LOCATION,
    OK,
    PLATFORM_RESPONSE,
    REGISTRATION,
    REGISTRATION_ANSWER,
    TEXT,
    decode_general_response,
    decode_registration_answer,
    encode_general_response,
)
from tests.jt808_terminal import location_body, registration_body  # noqa: E402

DB_NAME = "xiaoche_bench_jt808"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
XIAOCHE = ROOT / ".venv" / "bin" / "xiaoche"


def phone(i: int) -> str:
    return f"1380000{i:04d}" if i < 10_000 else f"138{i:08d}"


def psycopg_url(url: str, db: str | None = None) -> str:
    base = url.rsplit("/", 1)[0]
    return f"{base}/{db}" if db else url


def fresh_database(pg: str, terminals: int) -> str:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    url = psycopg_url(pg, DB_NAME).replace("postgresql://", "postgresql+psycopg://", 1)
    bundle = {
        "district": {"id": "bench", "name": "bench", "timezone": "Asia/Shanghai"},
        "vehicles": [{"id": f"jt-v{i:05d}", "kind": "school_bus", "route_ids": []}
                     for i in range(terminals)],
        "devices": [{"id": f"jt-d{i:05d}", "vehicle_id": f"jt-v{i:05d}",
                     "token": f"bench-token-{i:05d}", "jt808_phone": phone(i)}
                    for i in range(terminals)],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(bundle, f)
    env = {**os.environ, "XIAOCHE_DATABASE_URL": url, "XIAOCHE_SECRET_KEY": "bench"}
    subprocess.run([str(XIAOCHE), "import", f.name], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    os.unlink(f.name)
    return url


def count(pg: str, table: str) -> int:
    import psycopg

    with psycopg.connect(psycopg_url(pg, DB_NAME)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One terminal on an asyncio connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: str):
        self.reader, self.writer, self.phone = reader, writer, number
        self.frames = FrameReader()
        self.inbox: list[Frame] = []
        self.serial = 0
        self.text_at: float | None = None  # when a text (0x8300) was read

    def on_text(self, frame: Frame) -> None:
        self.text_at = time.time()
        self.send(GENERAL_RESPONSE, encode_general_response(frame.header.serial, TEXT, OK))

    def send(self, message_id: int, body: bytes) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        self.writer.write(encode_frame(message_id, self.phone, self.serial, body))
        return self.serial

    async def read(self) -> Frame:
        while not self.inbox:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.inbox.extend(f for _, f in self.frames.feed(data) if isinstance(f, Frame))
        return self.inbox.pop(0)

    async def login(self) -> None:
        self.send(REGISTRATION, registration_body())
        frame = await self.read()
        assert frame.header.message_id == REGISTRATION_ANSWER
        _, result, code = decode_registration_answer(frame.body)
        assert result == 0, f"registration of {self.phone}: result {result}"
        self.send(AUTHENTICATION, code.encode())
        frame = await self.read()
        assert decode_general_response(frame.body).result == OK

    async def stream(self, fixes: list[bytes], window: int) -> int:
        answered, sent = 0, 0
        while sent < min(window, len(fixes)):
            self.send(LOCATION, fixes[sent])
            sent += 1
        while answered < len(fixes):
            frame = await self.read()
            if frame.header.message_id == TEXT:
                self.on_text(frame)
            if frame.header.message_id != PLATFORM_RESPONSE:
                continue
            if decode_general_response(frame.body).result != OK:
                raise AssertionError(f"{self.phone}: a location was not accepted")
            answered += 1
            if sent < len(fixes):
                self.send(LOCATION, fixes[sent])
                sent += 1
        return answered

    async def wait_text(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout_s):
                while self.text_at is None:
                    frame = await self.read()
                    if frame.header.message_id == TEXT:
                        self.on_text(frame)


def queue_texts(pg: str, devices: list[int]) -> float:
    """Queue a text for each terminal number, as the API does; the time they were queued."""
    import psycopg

    now = time.time()
    with psycopg.connect(psycopg_url(pg, DB_NAME)) as conn:
        conn.cursor().executemany(
            "INSERT INTO jt808_texts (vehicle_id, device_id, text, emergency, status, created_at,"
            " created_by, expires_at, attempts) VALUES (%s, %s, %s, false, 'queued', %s, "
            "'bench', %s, 0)",
            [(f"jt-v{i:05d}", f"jt-d{i:05d}", "请给学校办公室回电话", now, now + 3600)
             for i in devices])
    return now


async def connect(port: int, number: str) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Client(reader, writer, number)


async def drive(port: int, terminals: int, idle: int, positions: int, window: int,
                pid: int, pg: str, texts: int) -> dict:
    out: dict = {"rss_kb_start": rss_kb(pid)}
    t = time.perf_counter()
    clients: list[Client] = []
    for start in range(0, terminals, 200):  # 200 at a time: a fleet coming on in the morning
        batch = await asyncio.gather(*(connect(port, phone(i))
                                       for i in range(start, min(terminals, start + 200))))
        await asyncio.gather(*(c.login() for c in batch))
        clients.extend(batch)
    idlers = []
    for start in range(0, idle, 200):
        batch = await asyncio.gather(*(connect(port, f"1399{i:07d}")
                                       for i in range(start, min(idle, start + 200))))
        for c in batch:
            c.send(HEARTBEAT, b"")
        await asyncio.gather(*(c.read() for c in batch))
        idlers.extend(batch)
    out["connect_s"] = time.perf_counter() - t
    await asyncio.sleep(1)
    out["rss_kb_connected"] = rss_kb(pid)
    base = int(time.time()) - 86_400  # yesterday: a backlog, well inside any age limit off
    fixes = [[location_body(base + 5 * k, 27.40 + n * 1e-4, 113.10 + k * 4e-4, 30.0)
              for k in range(positions)] for n in range(terminals)]
    t = time.perf_counter()
    streams = asyncio.gather(*(c.stream(f, window) for c, f in zip(clients, fixes, strict=True)))
    texted = [clients[n * terminals // texts] for n in range(texts)] if texts else []
    if texted:
        queued_at = await asyncio.to_thread(
            queue_texts, pg, [n * terminals // texts for n in range(texts)])
    answered = await streams
    out["stream_s"] = time.perf_counter() - t
    out["answered"] = sum(answered)
    if texted:
        await asyncio.gather(*(c.wait_text(15) for c in texted))
        delays = sorted(c.text_at - queued_at for c in texted if c.text_at is not None)
        out["texts_read"] = len(delays)
        out["text_delay_s"] = ([statistics.median(delays), delays[-1]] if delays else None)
        await asyncio.sleep(1)  # their answers recorded
    out["rss_kb_after"] = rss_kb(pid)
    for c in clients + idlers:
        c.writer.close()
    return out


def run_once(args) -> dict:
    url = fresh_database(args.pg, args.terminals)
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "XIAOCHE_DATABASE_URL": url, "XIAOCHE_SECRET_KEY": "bench",
           "XIAOCHE_MAX_PING_AGE_S": "0",
           "XIAOCHE_JT808_MAX_CONNECTIONS": str(args.terminals + args.idle + 100)}
    process = subprocess.Popen([str(XIAOCHE), "jt808", "--host", "127.0.0.1", "--port",
                                str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while b"JT/T 808 gateway on" not in Path(log.name).read_bytes():
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit(Path(log.name).read_text(errors="replace"))
            time.sleep(0.1)
        load = os.getloadavg()[0]
        result = asyncio.run(drive(port, args.terminals, args.idle, args.positions,
                                   args.window, process.pid, args.pg, args.texts))
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    result["stored"] = count(args.pg, "pings")
    result["rejects"] = count(args.pg, "rejects")
    if args.texts:
        result["texts_ok"] = count(args.pg, "jt808_texts WHERE status = 'ok'")
    result["rate"] = result["answered"] / result["stream_s"]
    result["load_before"] = load
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--mqtt-rate", type=float, default=None)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--texts", type=int, default=0)
    args = parser.parse_args()
    runs = [run_once(args) for _ in range(args.runs)]
    rate = statistics.median(r["rate"] for r in runs)
    loads = ", ".join(f"{r['load_before']:.1f}" for r in runs)
    print(f"terminals {args.terminals} (+{args.idle} idle), {args.positions} positions each, "
          f"window {args.window}, {args.runs} run(s); load before: {loads}")
    print("| run | positions/s | answered | stored | rejects | connect s | RSS MB start / "
          "connected / after | KB per connection |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        per = ((r["rss_kb_connected"] - r["rss_kb_start"]) / (args.terminals + args.idle)
               if args.terminals + args.idle else 0)
        lost = "" if r["stored"] == r["answered"] else " **LOST**"
        print(f"| {n} | {r['rate']:,.0f} | {r['answered']:,} | {r['stored']:,}{lost} | "
              f"{r['rejects']} | {r['connect_s']:.1f} | {r['rss_kb_start'] / 1024:.0f} / "
              f"{r['rss_kb_connected'] / 1024:.0f} / {r['rss_kb_after'] / 1024:.0f} | "
              f"{per:.1f} |")
    for n, r in enumerate(runs, 1):
        if args.texts:
            delay = r["text_delay_s"]
            print(f"run {n}: texts read {r['texts_read']}/{args.texts}, recorded ok "
                  f"{r['texts_ok']}; queue → terminal "
                  + (f"median {delay[0]:.2f} s, max {delay[1]:.2f} s" if delay else "none"))
    if args.mqtt_rate:
        print(f"ratio to the MQTT ingest ({args.mqtt_rate:,.0f} pings/s): "
              f"**{rate / args.mqtt_rate:.2f}**")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (results / f"jt808-{stamp}.json").write_text(json.dumps(
        {"args": vars(args), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
