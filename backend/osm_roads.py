"""Road travel times from an OpenStreetMap extract (``.osm.pbf``, or ``.osm`` XML), offline.

:func:`read_roads` keeps the ways a school bus may drive (``highway`` of a car class, not
``access=no|private``, one-way where tagged), each segment timed at its ``maxspeed`` or its
class's usual speed, never above what a school bus may drive (校车安全管理条例 §35: 60 km/h,
80 km/h on motorways). :func:`road_times` snaps the planning points to the nearest node of the
largest strongly connected part of that graph (a point farther than ``max_snap_m`` keeps the
straight line) and runs one Dijkstra per source point (scipy.sparse.csgraph) for the driving
seconds and metres between every pair. The pure use of the table is
``routing.planning.travel``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Usual speed (km/h) of a bus on each road class that cars may use; others (track, path,
#: footway, construction, …) are not roads for a school bus.
CLASS_SPEED_KMH = {
    "motorway": 80, "motorway_link": 50, "trunk": 60, "trunk_link": 40,
    "primary": 60, "primary_link": 40, "secondary": 50, "secondary_link": 35,
    "tertiary": 40, "tertiary_link": 30, "unclassified": 30, "road": 25,
    "residential": 25, "living_street": 10, "service": 15,
}
#: 校车安全管理条例 (2012) §35: a school bus drives at most 80 km/h on motorways, 60 elsewhere.
SCHOOL_BUS_MAX_KMH, SCHOOL_BUS_MOTORWAY_MAX_KMH = 60.0, 80.0
#: A point farther than this from any road keeps the straight line (a stop on a lane the
#: extract lacks is usually within a few hundred metres of a mapped road).
MAX_SNAP_M = 500.0
#: The way from a point to its road node is driven this fast (a lane the extract lacks).
ACCESS_KMH = 15.0
EARTH_M = 6_371_000.0
_NO_ACCESS = {"no", "private"}


class OsmError(ValueError):
    """The extract cannot be read, or holds no road a bus can drive."""


@dataclass(frozen=True, eq=False)
class RoadGraph:
    source: str  # the file's name, for the report
    lat: np.ndarray
    lon: np.ndarray
    tail: np.ndarray  # directed edges: tail → head, seconds and metres each
    head: np.ndarray
    seconds: np.ndarray
    metres: np.ndarray

    @property
    def nodes(self) -> int:
        return len(self.lat)

    @property
    def edges(self) -> int:
        return len(self.tail)


def parse_maxspeed(value: str | None) -> float | None:
    """``"50"``, ``"50 km/h"``, ``"30 mph"`` → km/h; anything else (``"CN:urban"``) → None.

    >>> parse_maxspeed("30 mph"), parse_maxspeed("40"), parse_maxspeed("none")
    (48.28032, 40.0, None)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph)?\s*", value or "")
    if not match or float(match.group(1)) <= 0:
        return None
    return float(match.group(1)) * (1.609344 if match.group(2) == "mph" else 1.0)


def _direction(tags: dict[str, str], cls: str) -> tuple[bool, bool]:
    """(forward allowed, backward allowed)."""
    oneway = tags.get("oneway", "")
    if oneway == "-1":
        return False, True
    if oneway in ("yes", "true", "1") or tags.get("junction") in ("roundabout", "circular"):
        return True, False
    if cls == "motorway" and oneway != "no":
        return True, False
    return True, True


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def read_roads(path: str | Path) -> RoadGraph:
    """The drivable road graph of the extract at ``path``; :class:`OsmError` when it cannot be
    read or holds no road."""
    import osmium

    path = Path(path)
    if not path.is_file():
        raise OsmError(f"{path}: no such file (an OpenStreetMap extract, .osm.pbf or .osm)")
    node_of: dict[int, int] = {}
    lat: list[float] = []
    lon: list[float] = []
    edges: list[tuple[int, int, float, float]] = []
    try:
        ways = (osmium.FileProcessor(str(path)).with_locations()
                .with_filter(osmium.filter.KeyFilter("highway")))
        for obj in ways:
            if not obj.is_way():
                continue
            tags = dict(obj.tags)
            cls = tags["highway"]
            if cls not in CLASS_SPEED_KMH or _NO_ACCESS & {
                    tags.get("access"), tags.get("motor_vehicle"), tags.get("motorcar")}:
                continue
            cap = SCHOOL_BUS_MOTORWAY_MAX_KMH if cls == "motorway" else SCHOOL_BUS_MAX_KMH
            kmh = min(parse_maxspeed(tags.get("maxspeed")) or CLASS_SPEED_KMH[cls], cap)
            forward, backward = _direction(tags, cls)
            previous: tuple[int, float, float] | None = None
            for ref in obj.nodes:
                if not ref.location.valid():  # cut at the extract's border
                    previous = None
                    continue
                here = (ref.lat, ref.lon)
                if ref.ref not in node_of:
                    node_of[ref.ref] = len(lat)
                    lat.append(here[0])
                    lon.append(here[1])
                index = node_of[ref.ref]
                if previous is not None and previous[0] != index:
                    metres = _haversine_m(previous[1], previous[2], *here)
                    seconds = metres / (kmh / 3.6)
                    if forward:
                        edges.append((previous[0], index, seconds, metres))
                    if backward:
                        edges.append((index, previous[0], seconds, metres))
                previous = (index, *here)
    except RuntimeError as e:  # libosmium: unreadable, truncated, unknown format
        raise OsmError(f"{path}: not a readable OpenStreetMap extract ({e})") from None
    if not edges:
        raise OsmError(f"{path}: no road a bus can drive (ways tagged highway="
                       f"{'|'.join(sorted(CLASS_SPEED_KMH))})")
    e = np.array(edges, dtype=float)
    return RoadGraph(path.name, np.array(lat), np.array(lon), e[:, 0].astype(np.int64),
                     e[:, 1].astype(np.int64), e[:, 2], e[:, 3])


@dataclass(frozen=True, eq=False)
class RoadTimes:
    seconds: np.ndarray  # [i, j] driving from point i to point j
    metres: np.ndarray
    snap_m: list[float | None]  # how far each point is from its road node; None: too far


def road_times(graph: RoadGraph, points: Sequence[tuple[float, float]],
               straight: Callable[[int, int], tuple[float, float]],
               max_snap_m: float = MAX_SNAP_M, access_kmh: float = ACCESS_KMH) -> RoadTimes:
    """Driving seconds and metres between every pair of ``points`` (lat, lon) along the roads.

    A pair with a point too far from the roads, or with no road path between them, takes
    ``straight(i, j)`` → (seconds, metres)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components, dijkstra
    from scipy.spatial import cKDTree

    n = graph.nodes
    # csr_matrix sums parallel edges: keep the fastest of each (tail, head) instead
    order = np.lexsort((graph.seconds, graph.head, graph.tail))
    tail, head = graph.tail[order], graph.head[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    keep = order[first]
    shape = (n, n)
    times = csr_matrix((graph.seconds[keep], (graph.tail[keep], graph.head[keep])), shape=shape)
    # each kept edge's metres, found by its key tail·n + head (sorted: lexsort's order)
    edge_key = graph.tail[keep] * n + graph.head[keep]
    edge_m = graph.metres[keep]
    _, label = connected_components(times, directed=True, connection="strong")
    main = np.flatnonzero(label == np.bincount(label).argmax())
    lat0 = math.radians(float(np.mean(graph.lat)))

    def xy(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return np.column_stack((EARTH_M * np.radians(lo) * math.cos(lat0),
                                EARTH_M * np.radians(la)))

    tree = cKDTree(xy(graph.lat[main], graph.lon[main]))
    pts = np.array(points, dtype=float).reshape(-1, 2)
    dist, nearest = tree.query(xy(pts[:, 0], pts[:, 1]))
    snap_m = [float(d) if d <= max_snap_m else None for d in dist]
    node = main[nearest]
    access_s = dist / (access_kmh / 3.6)
    k = len(points)
    seconds = np.zeros((k, k))
    metres = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                seconds[i, j], metres[i, j] = straight(i, j)
    snapped = [i for i in range(k) if snap_m[i] is not None]
    targets = node[snapped]
    for i in snapped:
        src = int(node[i])
        dist_s, pred = dijkstra(times, directed=True, indices=src, return_predecessors=True)
        along_m = _path_metres(edge_key, edge_m, n, pred, src, targets)
        for j, t_s, t_m in zip(snapped, dist_s[targets], along_m, strict=True):
            if i != j and math.isfinite(t_s):
                seconds[i, j] = t_s + access_s[i] + access_s[j]
                metres[i, j] = t_m + dist[i] + dist[j]
    return RoadTimes(seconds, metres, snap_m)


def _path_metres(edge_key: np.ndarray, edge_m: np.ndarray, n: int, pred: np.ndarray, src: int,
                 targets: np.ndarray) -> np.ndarray:
    """Metres along the shortest-time paths from ``src`` to ``targets`` (walking the
    predecessor tree back from all targets at once)."""
    total = np.zeros(len(targets))
    at = targets.astype(np.int64).copy()
    walking = (at != src) & (pred[at] >= 0)
    while walking.any():
        here = at[walking]
        back = pred[here]
        total[walking] += edge_m[np.searchsorted(edge_key, back * n + here)]
        at[walking] = back
        walking = (at != src) & (pred[at] >= 0)
    return total
