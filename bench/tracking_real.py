"""Tracking that holds on real buses (issue 13): the tracker judged on a real day and on hard
generated days, against their ground truth.

Run: ``.venv/bin/python bench/tracking_real.py [--quick | --hsl] [--seeds 0 1 2] [--repeat N]``
(``--hsl``: only the real day, 1 Hz and ~30 s, in a few seconds).
Prints a table (one column per day, the issue's goal next to each measure) and writes everything
to ``bench/results/tracking_real-<timestamp>.json``. Asserts nothing.

Days (``tests/realdays``):

* **HSL 510, 1 Hz and ~30 s**: the real day of ``tests/data/hsl510`` (12 trips, 11 buses,
  one route; a timetable derived from the trips' median profile), every ping, and subsampled to
  about one ping per 30 s per device as in the issue's conditions;
* **Cairns mixed, seeds**: generated hard days on the real Cairns GTFS shapes, every difficulty
  at once: 3 lines (a loop, two out-and-back pairs), 10 buses per line in a depot pool, 4 runs
  per bus back to back (~120 trips, ~24 000 pings), plus the spare buses of hand-overs;
* **Cairns mixed blocks, seeds**: the same days with each run naming the bus planned to drive
  it (``Run.vehicle_id``: a bundle with vehicle blocks), so the tracker can tell a late bus
  from an early one;
* **Cairns plain, seed 0**: the same fleet and timetable with no difficulty switched on (10 s
  sampling, 3 m noise, device off between runs): what the pool alone costs.

Measures: see ``tests/realdays/metrics.py`` (ETAs are scored once the bus has left its first
stop; those made while it still waits there are shown apart). The tracker is fed by ``metrics.drive`` (5 s
batches per vehicle, all vehicles interleaved in event time). Timing: pings/s of that drive on one
core, median of ``--repeat`` runs (ETA sampling included); the measures do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realdays.generator import DayConfig, Scenarios, generate  # noqa: E402
from tests.realdays.hsl import hsl_day  # noqa: E402
from tests.realdays.metrics import AHEAD, GOALS, Report, evaluate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _num(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def _triple(d: dict[int, float | None]) -> str:
    return " / ".join("-" if d[k] is None else f"{d[k]:g}" for k in AHEAD)


ROWS = [
    ("trips", "", lambda r: f"{r.truth_trips} ({r.vehicles} buses)"),
    ("pings", "", lambda r: f"{r.pings}"),
    ("trips on the right vehicle", "≥ 95 %", lambda r: _pct(r.trips_right_vehicle)),
    ("stop-passage recall", "≥ 98 %", lambda r: _pct(r.stop_recall)),
    ("median |time error|", "≤ 20 s", lambda r: _num(r.time_error_median_s, " s")),
    ("p90 |time error|", "", lambda r: _num(r.time_error_p90_s, " s")),
    ("false deviation spans /100 trips", "", lambda r: f"{r.false_deviations_per_100:g}"
     f" ({r.false_deviations})"),
    ("stops wrongly marked missed", "0", lambda r: str(r.wrongly_missed)),
    ("unobserved stops marked missed", "0", lambda r: f"{r.unobserved_missed}"
     f"/{r.unobserved_stops}"),
    ("tracker trips on a run the bus did not drive", "0",
     lambda r: str(r.counts["tracker_trips_not_in_truth"])),
    ("runs claimed by several buses", "0",
     lambda r: str(r.counts["runs_claimed_by_several_vehicles"])),
    ("ETA MAE 1/3/5 ahead (s)", "", lambda r: _triple(r.eta_mae_s)),
    ("baseline MAE 1/3/5 ahead (s)", "", lambda r: _triple(r.baseline_mae_s)),
    ("ETA / baseline 1/3/5", "≤ 0.7", lambda r: _triple(r.eta_ratio)),
    ("ETA predictions scored 1/3/5", "", lambda r: " / ".join(str(r.eta_n[k]) for k in AHEAD)),
    ("waiting at stop 0: ETA MAE 1/3/5 (s)", "",
     lambda r: _triple(r.counts["eta_waiting_mae_s"])),
    ("waiting at stop 0: baseline MAE 1/3/5 (s)", "",
     lambda r: _triple(r.counts["baseline_waiting_mae_s"])),
    ("tracker pings/s (drive)", "", lambda r: f"{r.pings / r.drive_s:,.0f}"),
]


def table(reports: list[Report]) -> str:
    head = ["measure", "goal", *[r.day.replace("cairns ", "") for r in reports]]
    rows = [[name, goal, *[fmt(r) for r in reports]] for name, goal, fmt in ROWS]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def run(day, repeat: int) -> Report:
    reports = [evaluate(day) for _ in range(max(repeat, 1))]
    report = reports[0]
    report.drive_s = round(statistics.median(r.drive_s for r in reports), 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="HSL ~30 s and one small mixed day (5 buses a line, 3 runs each)")
    parser.add_argument("--hsl", action="store_true",
                        help="only the real HSL 510 day, 1 Hz and ~30 s (a few seconds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per day for the timing")
    args = parser.parse_args()
    days = []
    if args.hsl:
        days.append(lambda: hsl_day(1.0))
        days.append(lambda: hsl_day(30.0))
    elif args.quick:
        days.append(lambda: hsl_day(30.0))
        days.append(lambda: generate(DayConfig(seed=args.seeds[0], buses_per_line=5,
                                               runs_per_bus=3)))
    else:
        days.append(lambda: hsl_day(1.0))
        days.append(lambda: hsl_day(30.0))
        for seed in args.seeds:
            days.append(lambda seed=seed: generate(DayConfig(seed=seed)))
        for seed in args.seeds:  # the same days with each bus's block of runs in the timetable
            days.append(lambda seed=seed: generate(DayConfig(seed=seed, blocks=True)))
        days.append(lambda: generate(DayConfig(seed=args.seeds[0], scenarios=Scenarios.none())))
    reports = []
    for make in days:
        start = time.perf_counter()
        day = make()
        made = time.perf_counter() - start
        report = run(day, args.repeat)
        reports.append(report)
        print(f"  {day.name}: generated in {made:.1f} s, tracked in {report.drive_s:.1f} s",
              file=sys.stderr)
    print("tracking on real and hard days (issue 13); goals from the issue")
    print(table(reports))
    for r in reports:
        print(f"  {r.day}: {r.counts['departures_out_of_timetable_order']} trips left before "
              f"an earlier run's bus (no time-and-place rule can tell those apart)")
        print(f"  {r.day}: right vehicle by flag {r.counts['right_vehicle_by_flag']}, "
              f"trips completed {r.counts['trip_completed_reasons']}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tracking_real-{time.strftime('%Y%m%dT%H%M%S')}.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    path.write_text(json.dumps({"argv": sys.argv[1:], "commit": commit, "goals": GOALS,
                                "reports": [r.as_dict() for r in reports]},
                               indent=1, default=str), encoding="utf-8")
    print(f"written {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
