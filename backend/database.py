"""Database binding: engine options per dialect, SQLite pragmas, and schema upgrade."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Engine

from backend.extensions import db

log = logging.getLogger(__name__)

#: first key of the PostgreSQL advisory lock around migrations ("XC"); the second is the schema's
MIGRATION_LOCK_CLASS = 0x5843


def init_database(app: Flask) -> None:
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; spare admins the +psycopg suffix.
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    idle_s = app.config.get("POOL_PING_IDLE_S")
    if uri.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
        idle_s = None
    elif idle_s is not None:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}), "pool_pre_ping": False}
    db.init_app(app)
    import backend.models  # noqa: F401  (register the tables on the metadata)

    if idle_s is not None:
        with app.app_context():
            ping_when_idle(db.engine, float(idle_s))


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Instead of ``pool_pre_ping`` (a round trip before every checkout): ping a connection on
    checkout only when it sat in the pool ``idle_s`` or longer, and replace it if the ping fails.

    What ``pool_pre_ping`` guards against are connections that died while nobody used them (a
    database restart during a quiet hour, an idle timeout in a proxy or firewall); those are
    still pinged. A connection given back less than ``idle_s`` ago is used as it is: if the
    server went away in that moment, the statement fails as one in flight would have, and
    SQLAlchemy then invalidates the whole pool (``invalidate_pool_on_disconnect``), so the
    following checkouts reconnect. ``GET /routes/{id}/live`` loses nothing even then: the fast
    path hands a failed answer to Flask, which reads again on a new connection.
    Set up for the API under gunicorn only (``backend.wsgi``: ``POOL_PING_IDLE_S``), whose
    hottest read checks out a connection hundreds of times a second; other processes keep
    ``pool_pre_ping``.
    """

    @event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection, record) -> None:
        record.info["xiaoche_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        checked_in = record.info.get("xiaoche_checked_in")  # None: a new connection
        if checked_in is None or time.monotonic() - checked_in < idle_s:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # the pool replaces this connection (and any older one) and checks out again
                raise exc.InvalidatePoolError(str(error)) from error
            raise


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the API read while ingest writes; FULL makes an acked ping survive a power cut;
    foreign keys are off by default in SQLite."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def upgrade_schema(app: Flask) -> None:
    """Bring the schema to the newest migration (what `xiaoche db upgrade` does), one process at
    a time: services started together (docker/compose.yaml) would otherwise race to create the
    same tables, and all but one fail."""
    from flask_migrate import upgrade

    with app.app_context(), migration_lock(db.engine):
        upgrade(directory=app.extensions["migrate"].directory)


def migration_lock_key(schema: str) -> tuple[int, int]:
    """The advisory lock's two keys for ``schema``: deployments in different schemas (or
    databases) of one server do not wait for each other."""
    return MIGRATION_LOCK_CLASS, zlib.crc32(schema.encode()) & 0x7FFFFFFF


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, hold a session advisory lock for the current schema (on a connection of its
    own) while the block runs; whoever comes second waits, then finds nothing left to do. A
    process that dies holding it releases it with its connection. Other databases: no lock."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
        keys = dict(zip(("c", "k"), migration_lock_key(schema), strict=True))
        if not conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), keys).scalar():
            log.info("another process is migrating schema %s; waiting for it", schema)
            conn.execute(text("SELECT pg_advisory_lock(:c, :k)"), keys)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), keys)
            conn.commit()
