"""The notification outbox dispatcher: from new ``notifications`` rows to pushes on each channel.

:func:`dispatch_once` does two steps, each in short transactions of its own:

1. **Plan.** Take the ``pending`` notifications (oldest first), ask
   :func:`notifications.delivery.plan_delivery` with the user's preferences and the wall clock,
   and write one ``notification_deliveries`` row per configured push channel the user wants
   (``app`` — the in-app list and ``/stream`` — reads the notifications table and needs none).
   ``push_state`` becomes ``planned``, ``none`` (no push channel), ``stale`` or ``quiet_hours``.
2. **Deliver.** One due delivery at a time: lock it, send it, record the outcome, commit — so a
   crash repeats at most the one send in flight (delivery is at least once; receivers
   de-duplicate on the notification id). A notification older than ``stale_after_s`` when its
   turn comes is marked ``stale`` and not sent; a failure is retried with exponential backoff
   and jitter; after ``XIAOCHE_PUSH_MAX_ATTEMPTS`` tries, or at once when retrying cannot help
   (a 4xx), the delivery is ``dead`` (logged at WARNING, kept with its last error).

On PostgreSQL both steps take their rows ``FOR UPDATE SKIP LOCKED``: any number of dispatchers
(``xiaoche dispatch``, the scheduler) share the work and never take the same row. SQLite locks
no rows; there a conditional update claims each notification and delivery (see
:func:`_next_due`), so a second dispatcher (``serve`` and a ``xiaoche dispatch`` beside it) is
safe there too, if pointless: SQLite has one writer. Channels come from :func:`notifications.channels.channels_from_config` and live
as long as the app (one MQTT connection per process).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from backend.districts import district_timezone
from backend.extensions import db
from backend.models import Notification, NotificationDelivery, User
from backend.presenters import notification_item
from gps_ingest.mqtt_common import new_client, parse_mqtt_url
from notifications.channels import Channel, ChannelConfigError, DeliveryError
from notifications.channels import channels_from_config as _channels_from_config
from notifications.config import DEFAULT, NotifyConfig
from notifications.delivery import is_stale, plan_delivery
from notifications.model import Message, Preferences

log = logging.getLogger(__name__)

CHANNELS_KEY = "xiaoche.push_channels"
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 300.0
ERROR_MAX_CHARS = 1000
#: SQLite: how long a claimed delivery is kept from other dispatchers (a send's timeout is 10 s)
CLAIM_S = 60.0
_channels_lock = threading.Lock()


@dataclass
class DispatchResult:
    """What one :func:`dispatch_once` did (counts)."""

    planned: int = 0  # notifications given delivery rows
    app_only: int = 0  # notifications with no push channel (the user's choice or none set up)
    held_stale: int = 0  # notifications too old to push when planned
    held_quiet: int = 0  # notifications held by the user's quiet hours
    sent: int = 0  # deliveries sent
    retried: int = 0  # deliveries failed, to be tried again
    dead: int = 0  # deliveries given up
    expired: int = 0  # deliveries whose notification went stale before their turn

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def busy(self) -> bool:
        return any(self.as_dict().values())


def backoff_s(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Wait before the next try after ``attempts`` failed ones: 2 s doubling up to 5 min, with
    "equal jitter" (between half and all of it) so failures after an outage spread out.

    >>> [round(backoff_s(n, lambda: 1.0)) for n in (1, 2, 3, 8, 20)]
    [2, 4, 8, 256, 300]
    >>> backoff_s(1, lambda: 0.0)
    1.0
    """
    full = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(max(attempts - 1, 0), 30))
    return full / 2 + rng() * full / 2


def channel_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The app's settings as the push channels read them: with ``MQTT_BROKER``, the broker of
    ``XIAOCHE_MQTT_URL`` parsed by the device edge's parser (the only one), when it is set."""
    url = config.get("MQTT_URL")
    if not url:
        return config
    try:
        broker = parse_mqtt_url(url)
    except ValueError as exc:
        raise ChannelConfigError(f"XIAOCHE_MQTT_URL: {exc}") from exc
    return {**config, "MQTT_BROKER": broker, "MQTT_CLIENT_FACTORY": new_client}


def check_settings(app: Flask) -> dict[str, Channel]:
    """The app's push channels, made now: raises :class:`ChannelConfigError` (a ``ValueError``)
    with a readable message when one is half configured (a webhook URL without its secret).
    Every process that dispatches calls this at start, to refuse to start rather than fail later."""
    with _channels_lock:
        channels = app.extensions.get(CHANNELS_KEY)
        if channels is None:
            channels = _channels_from_config(channel_config(app.config))
            app.extensions[CHANNELS_KEY] = channels
        return channels


def close_channels(app: Flask) -> None:
    """Close the app's push channels (the MQTT connection); the next dispatch makes new ones."""
    with _channels_lock:
        channels = app.extensions.pop(CHANNELS_KEY, None) or {}
    for channel in channels.values():
        try:
            channel.close()
        except Exception:
            log.exception("closing push channel %s", channel.name)


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _max_attempts(app: Flask) -> int:
    return max(1, int(app.config.get("PUSH_MAX_ATTEMPTS") or 8))


def dispatch_once(app: Flask, now: float | None = None, limit: int = 200) -> DispatchResult:
    """Plan up to ``limit`` pending notifications, then send up to ``limit`` due deliveries.

    ``now``: the wall clock (epoch s) to decide with; default ``time.time()``, read afresh for
    every delivery. Tests pass it to step through retries without sleeping. Never raises for one
    bad notification or delivery (they are logged); raises :class:`ChannelConfigError` when the
    channels are misconfigured.
    """
    clock: Callable[[], float] = time.time if now is None else (lambda: now)
    result = DispatchResult()
    with app.app_context():
        channels = check_settings(app)
        try:
            _plan(clock(), limit, channels, result)
            _deliver(app, clock, limit, channels, result)
        except Exception:  # the database went away; the next run starts over
            log.exception("dispatching notifications failed")
            db.session.rollback()
        finally:
            db.session.remove()
    if result.busy:
        log.info("dispatch: %s", ", ".join(f"{k} {v}" for k, v in result.as_dict().items() if v))
    return result


def _plan(now: float, limit: int, channels: dict[str, Channel], result: DispatchResult,
          cfg: NotifyConfig = DEFAULT) -> None:
    stmt = (select(Notification).where(Notification.push_state == "pending")
            .order_by(Notification.id).limit(limit))
    if _is_postgres():
        stmt = stmt.with_for_update(skip_locked=True)
    rows = db.session.scalars(stmt).all()
    if not rows:
        db.session.rollback()
        return
    users = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({n.user_id for n in rows})))}
    timezone = district_timezone()
    offered = ("app", *channels)
    for n in rows:
        prefs = _preferences(users.get(n.user_id), n.id)
        message = Message(n.user_id, n.kind, n.title, n.body, n.created_at,
                          n.dedupe_key or f"notification:{n.id}", route_id=n.route_id,
                          stop_id=n.stop_id, trip_id=n.trip_id, channels=offered)
        plan = plan_delivery(message, now, prefs, timezone, cfg)
        push = [c for c in plan.channels if c != "app"] if plan.held is None else []
        state = plan.held or ("planned" if push else "none")
        # a conditional update claims the row: on SQLite, where nothing is locked by the read,
        # a second dispatcher planning the same notification waits for this transaction and
        # then updates nothing, so it writes no second set of deliveries
        claimed = db.session.execute(
            update(Notification).where(Notification.id == n.id,
                                       Notification.push_state == "pending")
            .values(push_state=state).execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            continue
        for channel in push:
            db.session.add(NotificationDelivery(notification_id=n.id, channel=channel,
                                                state="pending", attempts=0,
                                                next_attempt_at=now))
        if plan.held == "stale":
            result.held_stale += 1
        elif plan.held is not None:
            result.held_quiet += 1
        elif push:
            result.planned += 1
        else:
            result.app_only += 1
    db.session.commit()


def _preferences(user: User | None, notification_id: int) -> Preferences:
    if user is None:
        return Preferences()
    try:
        return Preferences.from_json(user.preferences)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        log.warning("user %s has unreadable preferences (%s); notification %s uses the defaults",
                    user.id, exc, notification_id)
        return Preferences()


def _next_due(now: float) -> NotificationDelivery | None:
    """The oldest due delivery, taken for this dispatcher.

    On PostgreSQL it is locked ``FOR UPDATE SKIP LOCKED`` (one row per transaction: committing
    after its send releases only that lock, never a batch that others could then take). SQLite
    locks no row on a read, so there the delivery is claimed instead: its ``next_attempt_at`` is
    moved :data:`CLAIM_S` ahead by an update that only succeeds while it is still due, and that
    is committed before the send; another dispatcher no longer sees it as due, and if this one
    dies mid-send the delivery is due again once the claim runs out.
    """
    stmt = (select(NotificationDelivery)
            .where(NotificationDelivery.state == "pending",
                   NotificationDelivery.next_attempt_at <= now)
            .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id).limit(1))
    if _is_postgres():
        return db.session.scalars(stmt.with_for_update(skip_locked=True)).first()
    for _ in range(10):  # lost a race: take the next one
        delivery = db.session.scalars(stmt).first()
        if delivery is None:
            return None
        claimed = db.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery.id,
                   NotificationDelivery.state == "pending",
                   NotificationDelivery.next_attempt_at == delivery.next_attempt_at)
            .values(next_attempt_at=now + CLAIM_S)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if claimed == 1:
            return db.session.get(NotificationDelivery, delivery.id)
    return None


def _deliver(app: Flask, clock: Callable[[], float], limit: int, channels: dict[str, Channel],
             result: DispatchResult, cfg: NotifyConfig = DEFAULT) -> None:
    max_attempts = _max_attempts(app)
    for _ in range(limit):
        now = clock()
        delivery = _next_due(now)
        if delivery is None:
            db.session.rollback()
            return
        notification = db.session.get(Notification, delivery.notification_id)
        if notification is None or is_stale(notification.created_at, now, cfg.stale_after_s):
            delivery.state = "stale"
            result.expired += 1
            db.session.commit()
            continue
        channel = channels.get(delivery.channel)
        user = db.session.get(User, notification.user_id)
        try:
            if channel is None:
                raise DeliveryError(f"channel {delivery.channel!r} is not configured in this "
                                    "process", retryable=True)
            if user is None:
                raise DeliveryError(f"user {notification.user_id} no longer exists",
                                    retryable=False)
            channel.send(notification_item(notification), user.username)
        except Exception as exc:  # a channel's bug must not stop the others
            if not isinstance(exc, DeliveryError):
                log.exception("push channel %s raised", delivery.channel)
                exc = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
            _failed(delivery, exc, now, max_attempts, result)
        else:
            delivery.state = "sent"
            delivery.attempts += 1
            delivery.sent_at = clock()
            delivery.last_error = None
            result.sent += 1
        db.session.commit()  # right after each send: a crash repeats at most this one


def _failed(delivery: NotificationDelivery, error: DeliveryError, now: float,
            max_attempts: int, result: DispatchResult) -> None:
    delivery.attempts += 1
    delivery.last_error = str(error)[:ERROR_MAX_CHARS]
    if not error.retryable or delivery.attempts >= max_attempts:
        delivery.state = "dead"
        result.dead += 1
        why = "not retryable" if not error.retryable else f"after {delivery.attempts} tries"
        log.warning("push of notification %s on %s is dead (%s): %s",
                    delivery.notification_id, delivery.channel, why, error)
        return
    wait = backoff_s(delivery.attempts)
    if error.retry_after_s is not None:
        wait = max(wait, min(error.retry_after_s, BACKOFF_CAP_S))
    delivery.next_attempt_at = now + wait
    result.retried += 1
    log.info("push of notification %s on %s failed (try %d), next in %.0f s: %s",
             delivery.notification_id, delivery.channel, delivery.attempts, wait, error)


def run_dispatcher(app: Flask, stop_event: threading.Event, interval_s: float = 2.0,
                   limit: int = 200) -> None:
    """``xiaoche dispatch``: :func:`dispatch_once` every ``interval_s`` until ``stop_event``;
    straight again while there is a backlog. Closes the channels on the way out."""
    check_settings(app)
    try:
        while not stop_event.is_set():
            result = dispatch_once(app, limit=limit)
            backlog = result.planned + result.app_only + result.held_stale + result.held_quiet \
                >= limit or result.sent + result.retried + result.dead + result.expired >= limit
            if not backlog:
                stop_event.wait(interval_s)
    finally:
        close_channels(app)


__all__ = ["ChannelConfigError", "DispatchResult", "backoff_s", "check_settings",
           "close_channels", "dispatch_once", "run_dispatcher"]
