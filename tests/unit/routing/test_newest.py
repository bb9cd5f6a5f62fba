"""routing.newest.newest_per_key: the one rule for "the newest fix per key"."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from routing.newest import newest_per_key


@dataclass(frozen=True)
class Fix:
    device: str
    ts: float
    n: int  # where it came from: tells equal-ts twins apart


def fix_lists(first_n: int = 0):
    return st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 6)), max_size=30).map(
        lambda xs: [Fix(d, float(t), first_n + i) for i, (d, t) in enumerate(xs)])


def reference(fixes: list[Fix]) -> dict[str, Fix]:
    """Per device, the greatest ts, the earliest of equals: by sorting."""
    out: dict[str, Fix] = {}
    for f in sorted(fixes, key=lambda f: (f.device, -f.ts, f.n)):
        out.setdefault(f.device, f)
    return out


def by_device(f: Fix) -> str:
    return f.device


@given(fix_lists())
def test_each_key_gets_its_greatest_ts_the_first_of_equals(fixes):
    assert newest_per_key(fixes, key=by_device) == reference(fixes)


@given(fix_lists(), fix_lists(first_n=1000))
def test_moving_a_start_forward_is_the_newest_of_both(before, batch):
    start = newest_per_key(before, key=by_device)
    moved = newest_per_key(batch, key=by_device, start=start)
    assert moved == reference(before + batch)
    # a backlog (nothing newer than the start) leaves it as it was
    assert newest_per_key([f for f in batch if f.device in start and f.ts <= start[f.device].ts],
                          key=by_device, start=start) == start


@given(fix_lists(), fix_lists(first_n=1000))
def test_batches_compose(first, second):
    """One call over two batches is two calls, the second started from the first."""
    assert newest_per_key(second, key=by_device, start=newest_per_key(first, key=by_device)) == \
        newest_per_key(first + second, key=by_device)


def test_the_start_is_not_changed_and_other_ts_and_keys_work():
    start = {"a": Fix("a", 5.0, 0)}
    rows = [{"vehicle_id": "a", "ts": 7.0}, {"vehicle_id": "b", "ts": 1.0},
            {"vehicle_id": "a", "ts": 6.0}]
    newest = newest_per_key(rows, key=lambda r: r["vehicle_id"], ts=lambda r: r["ts"])
    assert newest == {"a": rows[0], "b": rows[1]}
    assert newest_per_key([Fix("a", 9.0, 1)], key=by_device, start=start)["a"].n == 1
    assert start == {"a": Fix("a", 5.0, 0)}
    assert newest_per_key([], key=by_device) == {}
