"""Time on the API: ISO-8601 UTC with Z out, epoch seconds or ISO with an offset in (SPEC)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from marshmallow import ValidationError, fields


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class EventTime(fields.Field):
    """A query/body time: epoch seconds or ISO-8601 with an offset → epoch seconds (float)."""

    def _deserialize(self, value, attr, data, **kwargs) -> float:
        from gps_ingest.records import parse_time

        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # "1700000000" is epoch seconds too
                value = float(value)
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
