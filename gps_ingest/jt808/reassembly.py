"""Sub-packages (header bit 13): a long message sent as several frames, put back together.

Package ``i`` of ``n`` carries ``(n, i)`` in its header, and the packages of one message have
consecutive serial numbers, so ``serial - i`` names the message. Pure and bounded: a
connection holds at most :data:`MAX_OPEN` unfinished messages (the oldest is dropped) of at most
:data:`MAX_PACKAGES` packages each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gps_ingest.jt808.frame import Frame

MAX_OPEN = 8
MAX_PACKAGES = 64


@dataclass
class _Open:
    total: int
    parts: dict[int, Frame] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reassembled:
    """The whole message (a header without sub-package fields, the serial of its first
    package) and every package's serial, each of which the platform answers."""

    frame: Frame
    serials: tuple[int, ...]


class Reassembler:
    def __init__(self) -> None:
        self._open: dict[tuple[int, int], _Open] = {}

    def add(self, frame: Frame) -> Reassembled | None | str:
        """The whole message once its last package is in; None while packages are missing;
        a reason in words for a package that cannot belong to any message."""
        total, index = frame.header.packages  # type: ignore[misc]
        if not 1 <= index <= total or total > MAX_PACKAGES:
            return f"package {index} of {total} (at most {MAX_PACKAGES} packages)"
        key = (frame.header.message_id, (frame.header.serial - index + 1) & 0xFFFF)
        entry = self._open.get(key)
        if entry is None or entry.total != total:
            entry = self._open[key] = _Open(total)
            while len(self._open) > MAX_OPEN:
                del self._open[next(iter(self._open))]
        entry.parts[index] = frame
        if len(entry.parts) < total:
            return None
        del self._open[key]
        parts = [entry.parts[i] for i in range(1, total + 1)]
        first = parts[0]
        whole = Frame(replace(first.header, packages=None, serial=key[1]),
                      b"".join(p.body for p in parts), all(p.check_ok for p in parts))
        return Reassembled(whole, tuple(p.header.serial for p in parts))

    @property
    def open_messages(self) -> int:
        return len(self._open)
