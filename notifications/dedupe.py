"""De-duplication keys: one per (user, trip, stop, kind), plus a subject where one cause can
concern several things (a child on a trip, an episode of a vehicle)."""

from __future__ import annotations

import hashlib

from notifications.model import UserId

#: ``notifications.dedupe_key`` is ``String(300)``.
MAX_KEY_LEN = 300


def dedupe_key(kind: str, user_id: UserId, trip_id: str | None, stop_id: str | None,
               subject: str | None = None) -> str:
    """The key that makes the outbox keep one message per cause.

    Built only from identifiers of the cause, never from times of observation, so the same
    cause seen in two snapshots, two replays or two workers gives the same key. Keys that would
    not fit the column keep their kind and user and hash the rest.

    >>> dedupe_key("bus_approaching", 7, "zt-am-1:2026-11-23:r", "longfeng-cun")
    'bus_approaching:7:zt-am-1:2026-11-23:r:longfeng-cun'
    >>> dedupe_key("rider_boarded", 7, None, None, "s-001@1764000000")
    'rider_boarded:7:-:-:s-001@1764000000'
    >>> len(dedupe_key("trip_delayed", 7, "t" * 400, None)) <= MAX_KEY_LEN
    True
    """
    parts = [kind, str(user_id), trip_id or "-", stop_id or "-"]
    if subject is not None:
        parts.append(subject)
    key = ":".join(parts)
    if len(key) <= MAX_KEY_LEN:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{kind}:{user_id}:#{digest}"[:MAX_KEY_LEN]
