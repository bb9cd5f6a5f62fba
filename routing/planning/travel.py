"""Travel times read from a table instead of computed from positions (a road network's).

A district with a road network gives the planner a :class:`TravelMatrix`: every planning point's
position (the planar ``x, y`` of the instance) and the driving seconds between each ordered
pair, as the backend found them on the roads (``backend/osm_roads.py``). ``Params.travel_s``
looks pairs up here, so the route builder, the chaining and the checker all follow the roads;
a pair of positions the table does not hold falls back to the params' own formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, eq=False)
class TravelMatrix:
    """``seconds[i][j]``: driving from the point at ``index[(x, y)] == i`` to the one at ``j``.

    >>> m = TravelMatrix({(0.0, 0.0): 0, (3.0, 4.0): 1}, ((0.0, 9.0), (7.0, 0.0)))
    >>> m.lookup(0.0, 0.0, 3.0, 4.0), m.lookup(3.0, 4.0, 0.0, 0.0), m.lookup(1.0, 1.0, 0.0, 0.0)
    (9.0, 7.0, None)
    """

    index: Mapping[tuple[float, float], int]
    seconds: Sequence[Sequence[float]]
    #: how the table was made, printed with the plan ("OSM roads from …: N nodes, …")
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.seconds)
        if any(len(row) != n for row in self.seconds):
            raise ValueError("a travel matrix is square")
        if sorted(self.index.values()) != list(range(n)):
            raise ValueError("a travel matrix's index numbers its rows 0…n-1 once each")

    def lookup(self, ax: float, ay: float, bx: float, by: float) -> float | None:
        i = self.index.get((ax, ay))
        j = self.index.get((bx, by))
        if i is None or j is None:
            return None
        return float(self.seconds[i][j])
