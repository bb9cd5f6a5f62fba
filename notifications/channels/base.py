"""The contract between the dispatcher and a delivery channel."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Channel(Protocol):
    """One way of pushing a notification to a user (MQTT, a webhook, a district's SMS gateway).

    ``send`` delivers one item — the JSON object ``GET /api/v1/me/notifications`` lists (``id``,
    ``kind``, ``title``, ``body``, ``created_at``, ``route_id``, ``stop_id``, ``trip_id``) — to
    ``username``, and returns only once the other side has taken it (MQTT PUBACK, HTTP 2xx). It
    raises :class:`DeliveryError` otherwise. Delivery is at least once: a send that timed out may
    still arrive, so receivers de-duplicate on ``id``. ``close`` releases connections; the
    dispatcher calls ``send`` from one thread at a time.
    """

    name: str

    def send(self, item: dict[str, Any], username: str) -> None: ...

    def close(self) -> None: ...


class DeliveryError(Exception):
    """A send that did not go through.

    ``retryable``: whether trying again later may succeed (timeouts, connection errors, 5xx,
    408/429) or not (a 4xx, a refused topic): the dispatcher retries the first kind with backoff
    and sends the second to the dead letter at once. ``retry_after_s``: how long the other side
    asked us to wait (HTTP ``Retry-After``), if it said.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class ChannelConfigError(ValueError):
    """A channel's settings are incomplete or wrong: the dispatcher refuses to start."""
