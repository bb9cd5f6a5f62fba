"""Decode + filter throughput of the pure ingest steps (no broker, no database).

    .venv/bin/python bench/decode.py [--seconds 1.0]

Prints pings/s (median of 5 runs) for single-ping payloads and for 100-ping backlog arrays,
native and OwnTracks, decode alone and decode + filters.  DESIGN.md's budget: the whole ingest
aims at 50 k pings/s for backlog arrays, so these steps must stay well above that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gps_ingest.decoders import decode_native_pings, decode_owntracks  # noqa: E402
from gps_ingest.filters import FilterConfig, Fix, apply_filters  # noqa: E402

NOW = 1_700_000_000.0
CFG = FilterConfig()


def native(i: int) -> dict:
    return {"ts": NOW - 7000 + 10 * i, "lat": 27.62 + 0.0001 * i, "lon": 113.08,
            "speed_kmh": 38.5, "heading_deg": 0.0, "accuracy_m": 6.0, "battery_pct": 80, "seq": i}


def owntracks(i: int) -> dict:
    return {"_type": "location", "tst": int(NOW - 7000 + 10 * i), "lat": 27.62 + 0.0001 * i,
            "lon": 113.08, "vel": 38, "cog": 0, "acc": 6, "alt": 80, "batt": 80, "tid": "B7"}


def workload(payloads: list[bytes], decode: Callable, with_filters: bool) -> Callable[[], int]:
    last = {"bus-07": Fix(NOW - 7200, 27.62, 113.08)}  # all pings are later and kept

    def run() -> int:
        n = 0
        for payload in payloads:
            pings = decode("bus-07", payload).pings
            if with_filters:
                kept, _ = apply_filters(pings, last, NOW, CFG)
                n += len(kept)
            else:
                n += len(pings)
        return n

    return run


def rate(run: Callable[[], int], seconds: float) -> float:
    rates = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            n += run()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="total time per line")
    args = parser.parse_args()
    cases = []
    for name, make, decode in (("native", native, decode_native_pings),
                               ("owntracks", owntracks, decode_owntracks)):
        singles = [orjson.dumps(make(i)) for i in range(100)]
        arrays = [orjson.dumps([make(100 * k + i) for i in range(100)]) for k in range(5)]
        cases += [(f"{name} single ping", singles, decode),
                  (f"{name} 100-ping array", arrays, decode)]
    print(f"{'payload':28} {'decode pings/s':>16} {'decode+filter pings/s':>22}")
    for label, payloads, decode in cases:
        decode_only = rate(workload(payloads, decode, False), args.seconds)
        with_filter = rate(workload(payloads, decode, True), args.seconds)
        print(f"{label:28} {decode_only:16,.0f} {with_filter:22,.0f}")


if __name__ == "__main__":
    main()
