"""``xiaoche plan``: how many buses and which routes (issue 21, ``routing/planning``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from backend.cli.group import main


def _bell(values: tuple[str, ...]) -> dict[str, str]:
    bells = {}
    for value in values:
        school, sep, hhmm = value.partition("=")
        if not sep or not school or not hhmm:
            raise click.BadParameter(f"{value!r} is not SCHOOL=HH:MM", param_hint="--bell")
        bells[school] = hhmm
    return bells


@main.command("plan", with_appcontext=False)  # reads files, needs no database
@click.option("--benchmark", "benchmark_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A Park–Tae–Kim instance folder (Schools.txt, Stops.txt).")
@click.option("--district", "district_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A district bundle (JSON): plan from its stops, students and school buses "
                   "and write a draft bundle to import.")
@click.option("--max-ride-s", type=click.FloatRange(min=60), default=None,
              help="Longest a child may ride, from the bus reaching their stop to the school "
                   "[default: 2700].")
@click.option("--max-ride-min", type=click.FloatRange(min=1), default=None,
              help="The same in minutes.")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=1), default=60.0,
              show_default=True, help="Seconds for building the routes, shared by the schools.")
@click.option("--engine", type=click.Choice(["pyvrp", "ortools"]), default="pyvrp",
              show_default=True, help="The VRP library that builds each school's routes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--speed-kmh", type=click.FloatRange(min=5, max=120), default=None,
              help="--district: a bus's speed on the road [default: 30].")
@click.option("--road-factor", type=click.FloatRange(min=1, max=5), default=None,
              help="--district: road distance over straight-line distance [default: 1.3].")
@click.option("--bell", "bells", multiple=True, metavar="SCHOOL=HH:MM",
              help="--district: a school's bell time (default: when its morning routes reach "
                   "it now). Repeat for several schools.")
@click.option("--seats", type=click.IntRange(min=1, max=100), default=None,
              help="--district: seats per bus [default: the district's smallest school bus].")
@click.option("--osm", "osm_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="--district: an OpenStreetMap extract of the county (.osm.pbf or .osm): "
                   "travel follows its roads [default: straight line × road factor].")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the solution (--benchmark, docs/SPEC.md) or the draft "
                   "bundle (--district).")
def plan_command(benchmark_dir: Path | None, district_file: Path | None,
                 max_ride_s: float | None, max_ride_min: float | None, time_limit_s: float,
                 engine: str, seed: int, speed_kmh: float | None, road_factor: float | None,
                 bells: tuple[str, ...], seats: int | None, osm_file: Path | None,
                 out: Path) -> None:
    """Plan routes and buses, check the plan, write it as JSON.

    Progress goes to stderr; the summary to stdout."""
    if (benchmark_dir is None) == (district_file is None):
        raise click.UsageError("give one of --benchmark DIR or --district BUNDLE.json")
    if max_ride_s is not None and max_ride_min is not None:
        raise click.UsageError("give --max-ride-s or --max-ride-min, not both")
    ride_s = max_ride_s if max_ride_s is not None else (
        max_ride_min * 60 if max_ride_min is not None else 2700.0)
    if district_file is not None:
        _plan_district(district_file, ride_s, time_limit_s, speed_kmh, road_factor,
                       _bell(bells), seats, osm_file, out)
        return
    if (speed_kmh is not None or road_factor is not None or bells or seats is not None
            or osm_file is not None):
        raise click.UsageError("--speed-kmh, --road-factor, --bell, --seats and --osm are "
                               "for --district; a benchmark brings its own")
    assert benchmark_dir is not None
    _plan_benchmark(benchmark_dir, ride_s, time_limit_s, engine, seed, out)


def _plan_benchmark(benchmark_dir: Path, max_ride_s: float, time_limit_s: float, engine: str,
                    seed: int, out: Path) -> None:
    from routing.planning.checker import check_plan
    from routing.planning.model import Params
    from routing.planning.reader import read_instance
    from routing.planning.solver import solve

    texts = {}
    for name in ("Schools.txt", "Stops.txt"):
        path = benchmark_dir / name
        if not path.is_file():
            raise click.ClickException(f"{path} not found: --benchmark takes a folder with "
                                       "Schools.txt and Stops.txt")
        texts[name] = path.read_text(encoding="utf-8")
    try:
        instance = read_instance(benchmark_dir.resolve().name, texts["Schools.txt"],
                                 texts["Stops.txt"])
    except ValueError as e:
        raise click.ClickException(f"{benchmark_dir}: {e}") from None
    params = Params(max_ride_s=max_ride_s)
    started = time.monotonic()
    try:
        plan = solve(instance, params, time_limit_s, lambda m: click.echo(m, err=True), engine,
                     seed=seed)
    except ValueError as e:
        raise click.ClickException(f"{instance.name}: {e}") from None
    solution = plan.to_json()
    violations = check_plan(instance, solution, params)
    out.write_text(json.dumps(solution, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    click.echo(f"{instance.name}: {len(plan.buses)} buses, {len(plan.routes)} routes, "
               f"{plan.deadhead_s / 3600:.1f} h empty driving, "
               f"{time.monotonic() - started:.0f} s; checked: "
               f"{'feasible' if not violations else f'{len(violations)} violations'}; "
               f"wrote {out}")
    if violations:
        for v in violations[:20]:
            click.echo(f"  {v.kind}: {v.where}: {v.detail}", err=True)
        raise click.ClickException("the plan breaks the problem's rules (see above)")


def _plan_district(district_file: Path, max_ride_s: float, time_limit_s: float,
                   speed_kmh: float | None, road_factor: float | None, bells: dict[str, str],
                   seats: int | None, osm_file: Path | None, out: Path) -> None:
    from backend import planning_service as ps
    from backend.osm_roads import OsmError, read_roads

    try:
        bundle = json.loads(district_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{district_file}: not a JSON bundle ({e})") from None
    if not isinstance(bundle, dict):
        raise click.ClickException(f"{district_file}: a bundle is a JSON object")
    roads = None
    if osm_file is not None:
        click.echo(f"reading roads from {osm_file} …", err=True)
        try:
            roads = read_roads(osm_file)
        except OsmError as e:
            raise click.ClickException(str(e)) from None
    try:
        draft, report = ps.plan_district(
            bundle, max_ride_s=max_ride_s, time_limit_s=time_limit_s,
            speed_kmh=speed_kmh or ps.SPEED_KMH, road_factor=road_factor or ps.ROAD_FACTOR,
            bells=bells, seats=seats, progress=lambda m: click.echo(m, err=True), roads=roads)
    except (ps.PlanningError, KeyError, TypeError) as e:
        raise click.ClickException(f"{district_file}: {e}") from None
    out.write_text(json.dumps(draft, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    click.echo(f"规划 plan: {report['buses']} 辆车 buses, {report['routes']} 条线路 routes, "
               f"{report['km']} km ({report['empty_km']} km 空驶 empty), 最长乘车 longest ride "
               f"{report['longest_ride_min']} min, 每车学生 children per bus "
               f"{report['children_per_bus']}, {report['seats']} 座 seats")
    click.echo(f"行驶时间 travel: {report['travel']}")
    click.echo(f"草案 draft bundle: {out} (xiaoche import {out})")
