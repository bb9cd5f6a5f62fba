"""Database binding: engine options per dialect, SQLite pragmas, and schema upgrade."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from backend.extensions import db


def init_database(app: Flask) -> None:
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; spare admins the +psycopg suffix.
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if uri.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    db.init_app(app)
    import backend.models  # noqa: F401  (register the tables on the metadata)


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
    """Bring the schema to the newest migration (what `xiaoche db upgrade` does)."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
