"""What ``xiaoche healthcheck ROLE`` checks: one answer per role that means the role works.

* ``api``: ``GET /healthz`` answers 200 (the database reachable).
* ``ingest``: the ingest writes a heartbeat file in its instance folder every
  ``XIAOCHE_INGEST_HEARTBEAT_S`` — whether it is connected to the broker, when its last batch was
  committed, whether a batch has been stuck — and the check reads it: missing, older than three
  intervals (the process is gone or hung), or naming a problem is unhealthy.
* ``scheduler``: somebody holds the scheduler lease (``backend.lease``) and keeps renewing it,
  i.e. the clock jobs are running; a standby scheduler is healthy while the holder is.

Each returns ``(ok, one line saying why)``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HEARTBEAT_FILE = "ingest-heartbeat.json"
#: a heartbeat older than this many intervals means the ingest stopped writing it
STALE_INTERVALS = 3


def heartbeat_path(instance_path: str | Path) -> Path:
    return Path(instance_path) / HEARTBEAT_FILE


def write_heartbeat(path: Path, state: dict[str, Any]) -> None:
    """Replace the heartbeat atomically: the check never reads half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_heartbeat(path: Path, who: str, now: float) -> tuple[str | None, dict]:
    """What every heartbeat check asks first — is there one, is it readable, fresh, without a
    problem named? — as ``(why not, the heartbeat)``: ``why not`` is ``None`` when all holds."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return (f"no heartbeat at {path}: {who} is not running (or uses another "
                "XIAOCHE_INSTANCE_PATH)"), {}
    except (OSError, ValueError) as exc:
        return f"unreadable heartbeat {path}: {exc}", {}
    age = now - float(state["at"])
    interval = float(state["interval_s"])
    if age > STALE_INTERVALS * interval:
        return (f"last heartbeat {age:.0f} s ago (written every {interval:g} s): {who} "
                f"(pid {state.get('pid')}) stopped or hangs"), state
    if state.get("problem"):
        return str(state["problem"]), state
    return None, state


def last_batch(state: dict, now: float) -> str:
    last = state.get("last_batch_at")
    return f"last batch {now - last:.0f} s ago" if last else "no batch yet"


def check_ingest(instance_path: str | Path, now: float | None = None) -> tuple[bool, str]:
    now = time.time() if now is None else now
    why_not, state = read_heartbeat(heartbeat_path(instance_path), "the ingest", now)
    if why_not is not None:
        return False, why_not
    return True, f"ok: connected to the broker, {last_batch(state, now)}"


def check_scheduler(engine, name: str = "scheduler",
                    now: float | None = None) -> tuple[bool, str]:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.lease import Lease

    now = time.time() if now is None else now
    try:
        state = Lease(engine, name).current()
    except SQLAlchemyError as exc:
        return False, f"cannot read the lease: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    if state is None:
        return False, "nobody holds the scheduler lease: no scheduler runs the jobs"
    if state.expires_at < now:
        return False, (f"the scheduler lease of {state.holder} expired "
                       f"{now - state.expires_at:.0f} s ago: no scheduler runs the jobs")
    return True, (f"ok: {state.holder} holds the scheduler lease "
                  f"(it expires in {state.expires_at - now:.0f} s unless renewed)")


def check_api(url: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return True, f"ok: {url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        try:
            down = json.loads(exc.read() or b"{}").get("down")
        except ValueError:
            down = None
        return False, f"{url} answered {exc.code}" + (f": down {down}" if down else "")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"nothing answers at {url}: {reason}"
