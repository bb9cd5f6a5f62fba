"""How long a stream server takes to hand one change to every stream that may see it."""

from __future__ import annotations

from typing import Any


class FanoutHistogram:
    """A Prometheus-style histogram (cumulative buckets, in seconds) of the fan-out latency:
    from the store's change notice, or the poll that read the change, to the moment the last
    recipient's frame of that poll was written to its connection. Observed on the event loop;
    read by ``/metrics`` (in a worker) or written to a stream process's status file."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4,
               0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BUCKETS) + 1)  # per bucket, the last one +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        i = 0
        while i < len(self.BUCKETS) and seconds > self.BUCKETS[i]:
            i += 1
        self.counts[i] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count of observations <= le)]``, ``+Inf`` last, as Prometheus exposes it."""
        out, total = [], 0
        for bound, n in zip((*map(str, self.BUCKETS), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"buckets": self.cumulative(), "sum": self.sum, "count": self.count}
