"""A distinct, stable MQTT client id for each ingest of a shared subscription group on a host.

Members of one group (``XIAOCHE_INGEST_SHARED_GROUP``) must not share a client id — the broker
would disconnect one for the other, over and over — and each should get *its own* id back when
it restarts, so the broker's session for that id (and the pings queued in it while the member
was down) is resumed rather than left behind. A member takes the lowest free **slot** on its
host: slot ``n`` is an exclusive ``flock`` on a file in the system's temporary folder, held for
the life of the process and released by the kernel when it ends, however it ends. The id is
``{base}-{hostname}-{n}``: a member restarted on its host takes its slot, and its session, back.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO

MAX_SLOTS = 256


class MemberSlot:
    """The slot this process holds (keep the object alive; :meth:`release` or exit frees it)."""

    def __init__(self, client_id: str, handle: IO[bytes] | None):
        self.client_id = client_id
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file description drops the flock
            self._handle = None


def take_slot(base: str, group: str, host: str | None = None,
              folder: Path | None = None) -> MemberSlot:
    """The lowest free slot of ``group`` on this host, as a client id ``{base}-{host}-{n}``."""
    host = host or socket.gethostname()
    folder = folder or Path(tempfile.gettempdir()) / f"xiaoche-ingest-slots-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{base}-{group}")
    for n in range(MAX_SLOTS):
        handle = open(folder / f"{safe}-{n}.lock", "ab")  # noqa: SIM115 - held for the process
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return MemberSlot(f"{base}-{host}-{n}", handle)
    raise RuntimeError(f"{MAX_SLOTS} ingest members of group {group!r} already run on {host}")
