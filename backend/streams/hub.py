"""Fan-out once per ping: one reader of the store per serving process, every open stream fed by it.

Each open ``GET /stream`` used to read the database on its own every 250 ms and compute its own
ETA: the work grew with the number of streams (about 5.5 ms of CPU per stream-second). A
:class:`StreamHub` does it once per process instead: every ``poll_s`` it reads the
``live_positions`` rows that changed and the notifications written since its watermarks (a
short read-only transaction, as the ingest may run elsewhere), builds each changed vehicle's
``position`` and ``eta`` event once (encoded once per crs), and hands each event to the streams
that may see it, found through indexes (by vehicle, by route of the trip in progress, by user).
The cost of a ping is one read and one encoding plus a few microseconds per recipient.

A :class:`Subscriber` is one open stream. :meth:`StreamHub.open` checks the caller's scope,
registers the stream, and only then reads what the client missed since its ``Last-Event-ID``
(so nothing committed meanwhile falls between the catch-up and the first poll; what both see is
sent once). Scopes are re-read in bulk every ``scope_refresh_s`` (in a server, in a thread of
their own beside the polls; a handful of queries for all
parents at once): a stream whose user was deleted or logged out everywhere is closed, a parent
whose child changed route follows the new route.

Delivery goes through a sink, so the same hub feeds blocking WSGI streams (:class:`ThreadSink`:
a condition per stream) and the asyncio stream server (``backend.streams.asgi``: one
``call_soon_threadsafe`` per poll for all its streams). The hub has no thread of its own: the
caller polls it (:func:`backend.streams.live.live_stream` in tests,
:class:`backend.streams.runner.HubThread` in a server, woken by the store's change notices).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import func, select

from backend.extensions import db
from backend.models import Notification, User
from backend.scopes import LiveScope
from backend.stream_service import (
    NOTIFICATIONS_PER_POLL,
    Message,
    ResumePoint,
    StreamConfig,
    _LateCommitCursor,
    catch_up,
    notification_message_body,
    read_position_events,
    resume_or_now,
)
from backend.streams.fanout import FanoutHistogram
from backend.streams.scopes import CHUNK, bulk_scopes, user_scope
from backend.streams.subscribers import OpenRequest, Sink, Subscriber

if TYPE_CHECKING:
    from backend.streams.runner import ChangeListener, HubThread

log = logging.getLogger(__name__)



class StreamHub:
    """The streams of one process and the one reader that feeds them (see the module doc)."""

    def __init__(self, app: Flask, config: StreamConfig | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.app = app
        self.config = config or StreamConfig.from_app_config(app.config)
        self.monotonic = monotonic
        self._lock = threading.RLock()
        self._subs: set[Subscriber] = set()
        self._everything: set[Subscriber] = set()  # admins: every vehicle
        self._by_vehicle: dict[str, set[Subscriber]] = defaultdict(set)
        self._by_route: dict[str, set[Subscriber]] = defaultdict(set)  # trips of these routes
        self._by_user: dict[int, set[Subscriber]] = defaultdict(set)
        self._positions: _LateCommitCursor | None = None
        self._notifications: _LateCommitCursor | None = None
        self._scope_read_at = -math.inf
        self.opening = 0  # streams between the limit check and open()'s end
        self.thread: HubThread | None = None  # what polls this hub in a server
        self.listener: ChangeListener | None = None  # what wakes it on PostgreSQL
        self._requests: list[OpenRequest] = []
        # re-read scopes in a thread of their own (a server's hub thread sets it: for 10,000
        # parents the read takes ~0.5 s, which a ping committed meanwhile would wait for);
        # otherwise in the poll that finds them due, before its changes (tests)
        self.refresh_in_background = False
        self._refresher: threading.Thread | None = None
        # notice (or poll) → the last recipient's frame handed to its transport
        self.fanout = FanoutHistogram()

    # -- counting -------------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        return len(self._subs)

    def full(self) -> bool:
        """Whether a new stream must be refused (``STREAM_MAX`` open or opening here)."""
        limit = int(self.app.config.get("STREAM_MAX", 0) or 0)
        return limit > 0 and len(self._subs) + self.opening >= limit

    # -- opening and closing --------------------------------------------------------------

    def open(self, user_id: int, token_version: int | None, resume: str | None, crs: str,
             sink: Sink) -> tuple[Subscriber, list[Message]]:
        """Register a stream and read what it missed; runs in an app context (database).

        Returns the subscriber and its first messages: ``retry`` with the resume point, then
        the catch-up (the newest position of each vehicle and every notification after the
        client's ``Last-Event-ID``). A subscriber returned closed has no scope (the user is
        gone or logged out): send the first message and end.
        """
        now = self.monotonic()
        sub = Subscriber(user_id, token_version, crs, sink, opened_at=now)
        asked = ResumePoint.parse(resume)
        try:
            # registered before the resume point is read: whatever commits from then on comes
            # through the hub (held in ``pending`` until this ends), whatever committed before
            # is at or below the point (a fresh stream: nothing to catch up) or is read by the
            # catch-up (a resumed stream), and what both saw is sent once
            sub.scope = user_scope(user_id, token_version, candidates=asked is not None)
            if sub.scope is not None:
                with self._lock:
                    if not self._subs:  # idle until now: start reading from here
                        self._positions = self._notifications = None
                    if self._positions is None:
                        self._start_cursors(now)
                    self._add(sub)
                if self.thread is not None:
                    self.thread.ensure_started()  # it may have stopped for want of streams
            try:
                sub.start = resume_or_now(user_id, asked)
                sub.received_mark, sub.notification_mark = (sub.start.received_at,
                                                             sub.start.notification_id)
                first = Message(retry_ms=self.config.retry_ms, id=sub.start.encode())
                if sub.scope is None:
                    sub.closed = True
                    return sub, [first]
                events = (catch_up(user_id, sub.scope, sub.start, crs, now)
                          if asked is not None else [])
            except BaseException:
                self.close(sub)
                raise
        finally:
            db.session.remove()
        return sub, self._finish_open(sub, first, events)

    def _finish_open(self, sub: Subscriber, first: Message, events: list) -> list[Message]:
        """The first messages: ``first``, the catch-up, then what the hub delivered meanwhile
        (less what the catch-up sent)."""
        with self._lock:
            messages = [first]
            for kind, key, ident, data, body in events:
                messages.append(self._stamp(sub, kind, key, data, body))
                sub.caught_up.add(ident)
            pending, sub.pending = sub.pending, None
            for item in pending or ():
                messages.extend(self._accept(sub, item))
        return messages

    # -- opening in batches ---------------------------------------------------------------

    def request_open(self, request: OpenRequest) -> None:
        """Queue a stream for the next batch (any thread); the hub's thread opens it within
        milliseconds."""
        with self._lock:
            self._requests.append(request)
        if self.thread is not None:
            self.thread.ensure_started()
            self.thread.wake()

    @property
    def requests_waiting(self) -> int:
        return len(self._requests)

    def open_pending(self) -> int:
        """Open every queued stream together, in an app context: a handful of queries for the
        whole batch (users, parents' routes, the newest notification of each) instead of
        several per stream; a resumed stream still reads its own catch-up."""
        with self._lock:
            requests, self._requests = self._requests, []
        if not requests:
            return 0
        opened: list[tuple[OpenRequest, Subscriber, Message, list]] = []
        refused: list[OpenRequest] = []
        try:
            names = sorted({r.username for r in requests})
            users: dict[str, tuple[int, int]] = {}
            for i in range(0, len(names), CHUNK):
                for user_id, username, version in db.session.execute(
                        select(User.id, User.username, User.token_version)
                        .where(User.username.in_(names[i:i + CHUNK]))):
                    users[username] = (user_id, version)
            valid = []
            for r in requests:
                found = users.get(r.username)
                if found is None or found[1] != r.token_version:
                    refused.append(r)
                else:
                    valid.append((r, found[0]))
            scopes = bulk_scopes(sorted({(uid, r.token_version) for r, uid in valid}))
            now = self.monotonic()
            subs: list[tuple[OpenRequest, Subscriber]] = []
            with self._lock:
                if not self._subs:
                    self._positions = self._notifications = None
                if self._positions is None:
                    self._start_cursors(now)
                for r, uid in valid:
                    scope = scopes.get((uid, r.token_version))
                    if scope is None:
                        refused.append(r)
                        continue
                    sub = Subscriber(uid, r.token_version, r.crs, r.sink, opened_at=now)
                    sub.scope = scope
                    self._add(sub)
                    subs.append((r, sub))
            try:  # registered first: see open()
                newest_received = resume_or_now(None, None).received_at
                ids = sorted({sub.user_id for _, sub in subs})
                newest_notification: dict[int, int] = {}
                for i in range(0, len(ids), CHUNK):
                    newest_notification.update(db.session.execute(
                        select(Notification.user_id, func.max(Notification.id))
                        .where(Notification.user_id.in_(ids[i:i + CHUNK]))
                        .group_by(Notification.user_id)).all())
                for r, sub in subs:
                    asked = ResumePoint.parse(r.resume)
                    newest = ResumePoint(newest_received, newest_notification.get(sub.user_id, 0))
                    sub.start = newest if asked is None else ResumePoint(
                        min(asked.received_at, newest.received_at),
                        min(asked.notification_id, newest.notification_id))
                    sub.received_mark = sub.start.received_at
                    sub.notification_mark = sub.start.notification_id
                    first = Message(retry_ms=self.config.retry_ms, id=sub.start.encode())
                    if asked is not None and sub.scope is not None:
                        sub.scope = user_scope(sub.user_id, None) or sub.scope  # candidates
                        events = catch_up(sub.user_id, sub.scope, sub.start, sub.crs, now)
                    else:
                        events = []
                    opened.append((r, sub, first, events))
            except BaseException:
                for _, sub in subs:
                    self.close(sub)
                raise
        except Exception:  # noqa: BLE001 — the view answers these streams instead
            log.exception("stream hub: opening %d streams failed", len(requests))
            for r in requests:
                r.done(None, [])
            return 0
        finally:
            db.session.remove()
        for r in refused:
            r.done(None, [])
        for r, sub, first, events in opened:
            r.done(sub, self._finish_open(sub, first, events))
        return len(opened)

    def close(self, sub: Subscriber) -> None:
        with self._lock:
            self._remove(sub)
            sub.closed = True

    def _add(self, sub: Subscriber) -> None:
        scope = sub.scope
        assert scope is not None
        self._subs.add(sub)
        self._by_user[sub.user_id].add(sub)
        if scope.vehicle_ids is None:
            self._everything.add(sub)
        else:
            for vehicle_id in scope.vehicle_ids:
                self._by_vehicle[vehicle_id].add(sub)
        for route_id in scope.trip_route_ids:
            self._by_route[route_id].add(sub)

    def _remove(self, sub: Subscriber) -> None:
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        self._everything.discard(sub)
        _discard(self._by_user, sub.user_id, sub)
        scope = sub.scope
        if scope is not None:
            for vehicle_id in scope.vehicle_ids or ():
                _discard(self._by_vehicle, vehicle_id, sub)
            for route_id in scope.trip_route_ids:
                _discard(self._by_route, route_id, sub)

    def _start_cursors(self, now: float) -> None:
        start = resume_or_now(None, None)
        grace = self.config.late_commit_grace_s
        self._positions = _LateCommitCursor(start.received_at, grace)
        self._notifications = _LateCommitCursor(start.notification_id, grace)

    # -- the poll -------------------------------------------------------------------------

    def poll(self, origin: float | None = None) -> int:
        """Read what changed once and deliver it to every stream that may see it; runs in an
        app context. Returns the number of messages delivered. ``origin`` (``time.monotonic()``):
        when the change that brought this poll forward was noticed (default: now)."""
        if origin is None:
            origin = time.monotonic()
        now = self.monotonic()
        with self._lock:
            if not self._subs:
                return 0
            positions, notifications = self._positions, self._notifications
            refresh = now - self._scope_read_at >= self.config.scope_refresh_s
            if refresh and self.refresh_in_background:  # not in the way of this poll's changes
                refresh = False
                self._scope_read_at = now
                if self._refresher is None or not self._refresher.is_alive():
                    self._refresher = threading.Thread(target=self._refresh_scopes,
                                                       name="stream-scopes", daemon=True)
                    self._refresher.start()
        assert positions is not None and notifications is not None
        try:
            if refresh:
                scopes = bulk_scopes(self._users())
                self._scope_read_at = now
            vehicle_events = read_position_events(positions, now)
            rows = db.session.scalars(
                select(Notification).where(Notification.id > notifications.floor(now))
                .order_by(Notification.id)
                .limit(NOTIFICATIONS_PER_POLL * 10 + notifications.remembered())).all()
            fresh = notifications.take(rows, key=lambda n: n.id, ident=lambda n: n.id, now=now)
            items = [("position", e) for e in vehicle_events]
            items += [("notification", (n.id, n.user_id, notification_message_body(n)))
                      for n in fresh]
        finally:
            db.session.remove()
        delivered = 0
        with self._lock:
            if refresh:
                self._apply_scopes(scopes)
            batch: dict[Subscriber, list[Message]] = {}
            shared: dict = {}
            for kind, item in items:
                for sub in self._recipients(kind, item):
                    if sub.pending is not None:
                        sub.pending.append((kind, item))
                        continue
                    messages = self._accept(sub, (kind, item), shared)
                    if messages:
                        batch.setdefault(sub, []).extend(messages)
            mark = positions.mark
            for sub in self._subs:
                if sub.pending is None and mark > sub.received_mark:
                    sub.received_mark = mark
                if sub.caught_up and now - sub.opened_at > 2 * self.config.late_commit_grace_s:
                    sub.caught_up.clear()
            by_sink: dict[Sink, list[tuple[Subscriber, list[Message]]]] = defaultdict(list)
            for sub, messages in batch.items():
                by_sink[sub.sink].append((sub, messages))
                delivered += len(messages)
            for sink, pairs in by_sink.items():
                sink.deliver(pairs, origin)
        return delivered

    def _recipients(self, kind: str, item: Any) -> Iterable[Subscriber]:
        if kind == "notification":
            return tuple(self._by_user.get(item[1], ()))
        event = item
        found = set(self._everything)
        found.update(self._by_vehicle.get(event.vehicle_id, ()))
        if event.route_id is not None:
            found.update(self._by_route.get(event.route_id, ()))
        return found

    def _accept(self, sub: Subscriber, entry: tuple, shared: dict | None = None
                ) -> list[Message]:
        """The messages of one hub item for this subscriber: none when it is older than the
        stream's start, was already sent by its catch-up, or is outside its scope. ``shared``:
        one poll's messages by (kind, resume point, body), so that the streams that stand at
        the same point get the same message object (and the sink encodes it once)."""
        kind, item = entry
        if kind == "notification":
            notification_id, _, (data, body) = item
            if notification_id <= sub.start.notification_id or notification_id in sub.caught_up:
                return []
            return [self._stamp(sub, "notification", notification_id, data, body, shared)]
        event = item
        if event.received_at <= sub.start.received_at or event.ident in sub.caught_up:
            return []
        scope = sub.scope
        if scope is None or not scope.may_follow(event.vehicle_id, event.route_id):
            return []
        return [self._stamp(sub, kind, event.received_at, data, body, shared)
                for kind, data, body in event.encoded(sub.crs)]

    @staticmethod
    def _stamp(sub: Subscriber, kind: str, key: Any, data: dict, body: str,
               shared: dict | None = None) -> Message:
        """The message with this subscriber's resume point after it as ``id``."""
        if kind == "notification":
            sub.notification_mark = max(sub.notification_mark, key)
        else:
            sub.received_mark = max(sub.received_mark, key)
        if shared is None:
            return Message(event=kind, data=data, id=sub.point(), body=body)
        marks = (sub.received_mark, sub.notification_mark)
        found = shared.get((kind, marks, id(body)))
        if found is None:  # the body lives as long as the poll: its id() is not reused
            found = shared[(kind, marks, id(body))] = Message(
                event=kind, data=data, id=ResumePoint(*marks).encode(), body=body)
        return found

    # -- scopes in bulk -------------------------------------------------------------------

    def _users(self) -> list[tuple[int, int | None]]:
        with self._lock:
            return sorted({(s.user_id, s.token_version) for s in self._subs},
                          key=lambda u: (u[0], u[1] is None, u[1] or 0))

    def _refresh_scopes(self) -> None:
        """Every open stream's scope re-read and applied, apart from the polls."""
        try:
            with self.app.app_context():
                try:
                    began = self.monotonic()
                    scopes = bulk_scopes(self._users())
                finally:
                    db.session.remove()
            with self._lock:
                self._apply_scopes(scopes, opened_before=began)
        except Exception:  # noqa: BLE001 — the next one is due in scope_refresh_s
            log.exception("stream hub: re-reading the streams' scopes failed")

    def _apply_scopes(self, scopes: dict[tuple[int, int | None], LiveScope | None],
                      opened_before: float | None = None) -> None:
        gone = []
        for sub in list(self._subs):
            key = (sub.user_id, sub.token_version)
            if key not in scopes or (opened_before is not None
                                     and sub.opened_at >= opened_before):
                continue  # opened after the read: its scope is newer
            scope = scopes[key]
            if scope is None:
                self._remove(sub)
                sub.closed = True
                gone.append(sub)
            elif sub.scope is None or (scope.vehicle_ids, scope.trip_route_ids) != (
                    sub.scope.vehicle_ids, sub.scope.trip_route_ids):
                self._remove(sub)
                sub.scope = scope
                self._add(sub)
        by_sink: dict[Sink, list[Subscriber]] = defaultdict(list)
        for sub in gone:
            by_sink[sub.sink].append(sub)
        for sink, subs in by_sink.items():
            sink.closed(subs)


def _discard(index: dict, key: Any, sub: Subscriber) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(sub)
        if not members:
            del index[key]
