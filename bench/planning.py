"""Route planning on the Park–Tae–Kim benchmark: buses next to the published BiRD and LBH.

Run: ``.venv/bin/python bench/planning.py [--time-limit 60] [--max-ride-s 2700]
[--engine pyvrp] [--only RSRB01,CSCB03]``. Prints numbers, asserts nothing.

Each instance of ``tests/data/sbrp/`` is solved through the command a user runs
(``xiaoche plan --benchmark DIR --out SOLUTION.json``, one process per instance, one after the
other), then its solution file is checked again here with ``routing.planning.checker`` — every
constraint of every route and bus — and its buses printed beside the published figures
(``published_buses.csv``: BiRD, Bertsimas, Delarue and Martin, PNAS 2019; LBH, Park, Tae and
Kim). Solutions go to ``bench/results/planning/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.planning.checker import check_plan  # noqa: E402
from routing.planning.model import Params  # noqa: E402
from routing.planning.reader import read_instance  # noqa: E402

DATA = ROOT / "tests" / "data" / "sbrp"
RESULTS = ROOT / "bench" / "results" / "planning"


def published(max_ride_s: float) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with (DATA / "published_buses.csv").open() as f:
        for row in csv.DictReader(f):
            if float(row["max_riding_time_s"]) == max_ride_s:
                method = "BiRD" if row["method"].startswith("BiRD") else "LBH"
                out.setdefault(row["benchmark"], {})[method] = int(row["buses"])
    return out


def solve_one(name: str, args: argparse.Namespace) -> dict:
    folder = DATA / name
    out = RESULTS / f"{name}-{int(args.max_ride_s)}.json"
    xiaoche = Path(sys.executable).with_name("xiaoche")
    started = time.monotonic()
    done = subprocess.run(
        [str(xiaoche), "plan", "--benchmark", str(folder), "--max-ride-s", str(args.max_ride_s),
         "--time-limit", str(args.time_limit), "--engine", args.engine, "--out", str(out)],
        capture_output=True, text=True)
    wall_s = time.monotonic() - started
    if done.returncode != 0:
        return {"name": name, "error": (done.stderr or done.stdout).strip().splitlines()[-1]}
    instance = read_instance(name, (folder / "Schools.txt").read_text(),
                             (folder / "Stops.txt").read_text())
    solution = json.loads(out.read_text())
    violations = check_plan(instance, solution, Params(max_ride_s=args.max_ride_s))
    routes = sum(len(b["routes"]) for b in solution["buses"])
    return {"name": name, "buses": len(solution["buses"]), "routes": routes,
            "violations": len(violations), "wall_s": wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds per instance for building routes (xiaoche plan)")
    parser.add_argument("--max-ride-s", type=float, default=2700.0)
    parser.add_argument("--engine", choices=["pyvrp", "ortools"], default="pyvrp")
    parser.add_argument("--only", default="", help="comma-separated instance names")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in DATA.iterdir() if p.is_dir())
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    figures = published(args.max_ride_s)
    print(f"engine {args.engine}, time limit {args.time_limit:.0f} s per instance, "
          f"max ride {args.max_ride_s:.0f} s")
    print(f"{'instance':8} {'routes':>6} {'buses':>5} {'BiRD':>5} {'LBH':>5} {'vs BiRD':>8} "
          f"{'checked':>10} {'wall s':>6}")
    ratios, rows = [], []
    for name in names:
        row = solve_one(name, args)
        rows.append(row)
        bird, lbh = figures[name]["BiRD"], figures[name]["LBH"]
        if "error" in row:
            print(f"{name:8} failed: {row['error']}")
            continue
        ratios.append(row["buses"] / bird)
        checked = "feasible" if row["violations"] == 0 else f"{row['violations']} viol."
        print(f"{name:8} {row['routes']:6d} {row['buses']:5d} {bird:5d} {lbh:5d} "
              f"{row['buses'] / bird - 1:+8.1%} {checked:>10} {row['wall_s']:6.0f}", flush=True)
    done = [r for r in rows if "error" not in r]
    if done:
        mean = lambda key: statistics.fmean(figures[r["name"]][key] for r in done)  # noqa: E731
        print(f"{'average':8} {'':6} {statistics.fmean(r['buses'] for r in done):5.1f} "
              f"{mean('BiRD'):5.1f} {mean('LBH'):5.1f} {statistics.fmean(ratios) - 1:+8.1%}")
        print(f"feasible: {sum(r['violations'] == 0 for r in done)}/{len(rows)}; "
              f"more buses than LBH: "
              f"{sum(r['buses'] > figures[r['name']]['LBH'] for r in done)}; "
              f"fewer than BiRD: {sum(r['buses'] < figures[r['name']]['BiRD'] for r in done)}")


if __name__ == "__main__":
    main()
