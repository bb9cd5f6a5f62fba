"""Progress along a route, aware of where the vehicle already is.

The globally nearest point of a path is wrong whenever the route drives a road twice or loops:
a ping is snapped to the best candidate inside a window that starts a little behind the current
progress and reaches as far ahead as the vehicle could have driven since it last snapped.
"""

from __future__ import annotations

import math

import numpy as np

from routing.config import TrackerConfig
from routing.geometry import FloatArray, RouteGeometry

_MATRIX_CELLS = 200_000  # per chunk of (pings x segments): bounded memory, still vectorised


class ProjectedBatch:
    """One batch of pings in one route's metric frame; the (pings x segments) candidate
    matrices are computed lazily, a chunk of pings at a time."""

    def __init__(self, geom: RouteGeometry, lat: FloatArray, lon: FloatArray):
        self.geom = geom
        self.x, self.y = geom.project(lat, lon)
        self.offset = geom.offsets(self.x, self.y)
        self.xs: list[float] = self.x.tolist()  # scalar access on the hot path
        self.ys: list[float] = self.y.tolist()
        self.offsets: list[float] = self.offset.tolist()
        self._chunk = max(8, min(512, _MATRIX_CELLS // len(geom.seg_start)))
        self._rows: dict[int, tuple[FloatArray, FloatArray]] = {}

    def candidates(self, i: int) -> tuple[FloatArray, FloatArray]:
        """Distance to every segment and position along the route of each foot, for ping ``i``."""
        c = i // self._chunk
        block = self._rows.get(c)
        if block is None:
            lo, hi = c * self._chunk, (c + 1) * self._chunk
            block = self.geom.candidates(self.x[lo:hi], self.y[lo:hi])
            self._rows[c] = block
        k = i - c * self._chunk
        return block[0][k], block[1][k]


def snap(batch: ProjectedBatch, i: int, lo_m: float, hi_m: float, ref_m: float,
         cfg: TrackerConfig) -> tuple[float, float]:
    """The best position along the route for ping ``i`` inside ``[lo_m, hi_m]``.

    Candidates are scored by their distance to the ping plus a small penalty per metre ahead of
    ``ref_m``, so that on a road driven twice the earlier pass wins unless the later one is
    clearly closer.

    Returns
    -------
    tuple of float
        ``(along_m, distance_m)``: the chosen position (clamped into the window) and how far the
        ping is from it.
    """
    dist, along = batch.candidates(i)
    geom = batch.geom
    a, b = geom.window(lo_m, hi_m)
    if b - a <= 6:  # the usual case on rural roads: a scalar loop beats numpy's call overhead
        best_score = best_d = best_s = math.inf
        for g in range(a, b):
            d, s = float(dist[g]), float(along[g])
            if s < lo_m or s > hi_m:
                d, s = _clamped(batch, i, g, lo_m, hi_m)
            score = d + cfg.progress_forward_penalty * max(s - ref_m, 0.0)
            if score < best_score:
                best_score, best_d, best_s = score, d, s
        return best_s, best_d
    ds, ss = dist[a:b].copy(), along[a:b].copy()
    for k in {0, len(ss) - 1}:  # the window may cut its first or last segment
        if not lo_m <= ss[k] <= hi_m:
            ds[k], ss[k] = _clamped(batch, i, a + k, lo_m, hi_m)
    scores = ds + cfg.progress_forward_penalty * np.maximum(ss - ref_m, 0.0)
    k = int(np.argmin(scores))
    return float(ss[k]), float(ds[k])


def _clamped(batch: ProjectedBatch, i: int, g: int, lo_m: float, hi_m: float) -> tuple[float,
                                                                                        float]:
    """Distance to, and position of, the nearest point of segment ``g`` inside the window."""
    geom = batch.geom
    s = min(max(float(batch.candidates(i)[1][g]), lo_m, geom.starts[g]), hi_m, geom.ends[g])
    f = (s - geom.starts[g]) / (geom.ends[g] - geom.starts[g])
    px = geom.seg_x0[g] + f * geom.seg_dx[g]
    py = geom.seg_y0[g] + f * geom.seg_dy[g]
    return math.hypot(batch.xs[i] - px, batch.ys[i] - py), s


def advance(batch: ProjectedBatch, i: int, progress_m: float, since_s: float, corridor_m: float,
            cfg: TrackerConfig) -> float | None:
    """New progress for ping ``i`` given the current ``progress_m`` reached ``since_s`` ago.

    Returns ``None`` when the ping is off the route (farther than the corridor plus
    ``progress_snap_extra_m`` from every candidate in the window): progress holds. Progress never
    decreases.
    """
    hi = progress_m + cfg.progress_window_m + cfg.progress_max_speed_mps * max(since_s, 0.0)
    along, dist = snap(batch, i, progress_m - cfg.progress_back_m, hi, progress_m, cfg)
    if dist > corridor_m + cfg.progress_snap_extra_m:
        return None
    return max(progress_m, along)
