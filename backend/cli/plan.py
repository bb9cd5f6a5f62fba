"""``xiaoche plan``: how many buses and which routes (issue 21, ``routing/planning``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from backend.cli.group import main


@main.command("plan", with_appcontext=False)  # a benchmark needs no database
@click.option("--benchmark", "benchmark_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="A Park–Tae–Kim instance folder (Schools.txt, Stops.txt).")
@click.option("--max-ride-s", type=click.FloatRange(min=60), default=2700.0, show_default=True,
              help="Longest a child may ride, from the bus reaching their stop to the school.")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=1), default=60.0,
              show_default=True, help="Seconds for building the routes, shared by the schools.")
@click.option("--engine", type=click.Choice(["pyvrp", "ortools"]), default="pyvrp",
              show_default=True, help="The VRP library that builds each school's routes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the solution (JSON, docs/SPEC.md).")
def plan_command(benchmark_dir: Path, max_ride_s: float, time_limit_s: float, engine: str,
                 seed: int, out: Path) -> None:
    """Plan routes and buses for a benchmark instance, check the plan, write it as JSON.

    Progress goes to stderr; the summary line to stdout."""
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
