"""Small planning instances for the tests: made by hand, or cut out of a real benchmark one."""

from __future__ import annotations

from pathlib import Path

from routing.planning.model import Instance, School, Stop
from routing.planning.reader import read_instance

SBRP = Path(__file__).resolve().parents[3] / "data" / "sbrp"
FT_PER_MIN = 29.333 * 60  # one minute's drive at the benchmark's speed


def school(sid: str, x: float, y: float, bell_hhmm: str) -> School:
    h, m = divmod(int(bell_hhmm), 100)
    return School(sid, x, y, float(h * 3600 + m * 60))


def benchmark(name: str) -> Instance:
    folder = SBRP / name
    return read_instance(name, (folder / "Schools.txt").read_text(),
                         (folder / "Stops.txt").read_text())


def cut(instance: Instance, school_ids: list[str], stops_per_school: int) -> Instance:
    """The first ``stops_per_school`` stops of each named school of a real instance."""
    stops: list[Stop] = []
    for sid in school_ids:
        stops.extend(instance.stops_of(sid)[:stops_per_school])
    return Instance(f"{instance.name}-cut", tuple(s for s in instance.schools
                                                  if s.id in school_ids), tuple(stops))
