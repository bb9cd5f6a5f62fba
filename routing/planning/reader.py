"""Reads the Park–Tae–Kim benchmark folder format from the text of its two files.

``Schools.txt``: ``ID X Y AMEARLY AMLATE`` (times as HHMM, e.g. ``945``); ``Stops.txt``:
``ID X_COORD Y_COORD EP_ID STUDENT_COUNT``. Tab-separated with a header line. Bad input raises
``ValueError`` naming the file, the line and what is wrong.
"""

from __future__ import annotations

from routing.planning.model import Instance, School, Stop

SCHOOL_COLUMNS = ("ID", "X", "Y", "AMEARLY")
STOP_COLUMNS = ("ID", "X_COORD", "Y_COORD", "EP_ID", "STUDENT_COUNT")


def hhmm_to_s(value: str) -> float:
    """``"945"`` → 35100.0 (09:45 as seconds after midnight).

    >>> hhmm_to_s("510")
    18600.0
    """
    if not value.isdigit() or len(value) > 4:
        raise ValueError(f"{value!r} is not a time HHMM")
    hours, minutes = divmod(int(value), 100)
    if hours > 23 or minutes > 59:
        raise ValueError(f"{value!r} is not a time HHMM")
    return float(hours * 3600 + minutes * 60)


def _rows(text: str, columns: tuple[str, ...], filename: str) -> list[tuple[int, dict[str, str]]]:
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip()]
    if not lines:
        raise ValueError(f"{filename}: empty")
    header = lines[0][1]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{filename}: header lacks {', '.join(missing)}")
    rows = []
    for n, cells in lines[1:]:
        if len(cells) != len(header):
            raise ValueError(f"{filename} line {n}: {len(cells)} fields, expected {len(header)}")
        rows.append((n, dict(zip(header, cells, strict=True))))
    return rows


def _number(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a number") from None


def read_instance(name: str, schools_text: str, stops_text: str) -> Instance:
    schools = []
    for n, row in _rows(schools_text, SCHOOL_COLUMNS, "Schools.txt"):
        where = f"Schools.txt line {n}"
        try:
            bell = hhmm_to_s(row["AMEARLY"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        schools.append(School(row["ID"], _number(row["X"], where), _number(row["Y"], where),
                              bell))
    ids = [s.id for s in schools]
    if len(set(ids)) != len(ids):
        raise ValueError("Schools.txt: duplicate school ID")
    known = set(ids)
    stops = []
    for n, row in _rows(stops_text, STOP_COLUMNS, "Stops.txt"):
        where = f"Stops.txt line {n}"
        if row["EP_ID"] not in known:
            raise ValueError(f"{where}: school {row['EP_ID']!r} is not in Schools.txt")
        count = row["STUDENT_COUNT"]
        if not count.isdigit():
            raise ValueError(f"{where}: STUDENT_COUNT {count!r} is not a whole number")
        stops.append(Stop(row["ID"], _number(row["X_COORD"], where),
                          _number(row["Y_COORD"], where), row["EP_ID"], int(count)))
    stop_ids = [s.id for s in stops]
    if len(set(stop_ids)) != len(stop_ids):
        raise ValueError("Stops.txt: duplicate stop ID")
    return Instance(name, tuple(schools), tuple(s for s in stops if s.students > 0))
