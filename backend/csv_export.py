"""CSV for the finance office: UTF-8 with a BOM, so Excel reads 刘胜 and 朱亭学校 correctly."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def bom_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """``rows`` as CSV text with a header and a BOM; ``None`` becomes an empty cell.

    >>> bom_csv(["a", "b"], [{"a": 1, "b": None}]) == "\\ufeffa,b\\r\\n1,\\r\\n"
    True
    """
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()
