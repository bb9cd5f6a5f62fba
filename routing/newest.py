"""The newest item per key (each device's newest fix, each vehicle's newest ping): one rule,
written once.

The newest is the item with the greatest ``ts``; of items with the same ``ts`` the one met first
stays (a ``start`` value before any item), so a twin or a backlog never moves a key back and the
answer does not depend on which of two equal fixes came later in a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")

_TS = attrgetter("ts")


def newest_per_key(items: Iterable[T], key: Callable[[T], K],
                   ts: Callable[[T], float] = _TS,
                   start: Mapping[K, T] | None = None) -> dict[K, T]:
    """``start`` (default: nothing) moved forward by ``items``: per key, the item with the
    greatest ``ts(item)``, the first met of equals (``start``'s before any of ``items``).

    >>> from collections import namedtuple
    >>> Fix = namedtuple("Fix", "device ts lat")
    >>> newest = newest_per_key([Fix("a", 5, 1), Fix("b", 2, 2), Fix("a", 3, 3), Fix("a", 5, 4)],
    ...                         key=lambda f: f.device)
    >>> sorted((k, f.ts, f.lat) for k, f in newest.items())
    [('a', 5, 1), ('b', 2, 2)]
    >>> newest_per_key([Fix("a", 4, 9)], key=lambda f: f.device, start=newest)["a"].lat
    1
    """
    newest: dict[K, T] = dict(start) if start is not None else {}
    for item in items:
        k = key(item)
        known = newest.get(k)
        if known is None or ts(item) > ts(known):
            newest[k] = item
    return newest
