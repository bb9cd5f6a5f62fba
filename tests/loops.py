"""``asyncio.run`` for tests, in a thread of its own: the browser tests (Playwright's sync API)
leave an event loop running in the main thread for the rest of the session, and there
``asyncio.run`` refuses to start ("cannot be called from a running event loop")."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
