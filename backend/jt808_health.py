"""The JT/T 808 gateway's health: a heartbeat file it writes, ``xiaoche healthcheck jt808`` reads.

``xiaoche jt808`` writes ``jt808-heartbeat.json`` in its instance folder every
``XIAOCHE_INGEST_HEARTBEAT_S``, from what its event loop answers (:meth:`Jt808Gateway.probe`):
a loop that does not answer within the interval, or batches that have failed (the database)
for longer than one interval, is a problem the check reports. Missing or older than three
intervals: the process is gone or hung. A TCP connect would not tell: the kernel accepts
connections into the backlog whether the loop runs or not.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from backend.health import last_batch, read_heartbeat, write_heartbeat

HEARTBEAT_FILE = "jt808-heartbeat.json"


def heartbeat_path(instance_path: str | Path) -> Path:
    return Path(instance_path) / HEARTBEAT_FILE


def heartbeat(gateway, port: int, interval_s: float, now: float | None = None) -> dict:
    """The heartbeat's content now: the gateway's state, and a problem if it has one."""
    now = time.time() if now is None else now
    state = gateway.probe(timeout_s=max(1.0, interval_s / 2))
    beat: dict = {"at": now, "interval_s": interval_s, "pid": os.getpid(), "port": port,
                  "problem": None}
    if state is None:
        beat["problem"] = "the gateway's event loop does not answer"
        return beat
    beat.update(connections=state["connections"], authenticated=state["authenticated"],
                last_batch_at=state["last_batch_at"], positions=state["positions"])
    if state["failing"] is not None:
        since, error = state["failing"]
        if now - since > interval_s:
            beat["problem"] = (f"batches fail for {now - since:.0f} s (nothing is answered, "
                               f"terminals resend): {error}")
    return beat


def write(instance_path: str | Path, beat: dict) -> None:
    write_heartbeat(heartbeat_path(instance_path), beat)


def check_jt808(instance_path: str | Path, now: float | None = None) -> tuple[bool, str]:
    now = time.time() if now is None else now
    why_not, state = read_heartbeat(heartbeat_path(instance_path), "the JT/T 808 gateway", now)
    if why_not is not None:
        return False, why_not
    return True, (f"ok: port {state.get('port')}, {state.get('connections')} connections "
                  f"({state.get('authenticated')} authenticated), {last_batch(state, now)}")
