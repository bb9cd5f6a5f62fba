"""Shared fixtures: a real database (SQLite by default, PostgreSQL when XIAOCHE_TEST_DATABASE_URL
is set), migrated once per session and emptied between tests, and the sample district bundle.

Each test session on PostgreSQL works in a schema of its own, so concurrent runs on one server
do not see each other.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text

import backend.security
from backend import create_app
from backend.access_log import forget_access_log
from backend.database import upgrade_schema
from backend.extensions import db

# Shared, loaded machines (CI runs both suites side by side): a slow example is no bug, so no
# per-example deadline; speed is measured in bench/, never asserted in tests.
settings.register_profile("xiaoche", deadline=None)
# CI (`.ci/run` sets XIAOCHE_HYPOTHESIS_PROFILE=ci): the same examples on every run, so a red CI
# is a change's doing, never a new random draw; the random hunt for new edges is a local run
# (the default profile, or XIAOCHE_PROPERTY_EXAMPLES=500 for the tracker's properties), and what
# it finds is fixed or recorded as an issue.
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("XIAOCHE_HYPOTHESIS_PROFILE") or "xiaoche")

# Real salted hashes, but cheap ones: the suite hashes every demo password many times.
backend.security.PASSWORD_METHOD = "pbkdf2:sha256:1000"

SAMPLE_BUNDLE_PATH = Path(__file__).resolve().parents[1] / "backend" / "sample" / "lukou.json"
FIXTURES = Path(__file__).resolve().parent / "data"  # real data, copied with licences


def _postgres_url() -> str | None:
    url = os.environ.get("XIAOCHE_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


@contextmanager
def postgres_schema(pg: str, prefix: str) -> Iterator[tuple[Engine, str, str]]:
    """A new, empty schema on the PostgreSQL of ``pg``, dropped at the end: ``(an engine on the
    database, the schema's name, a URL whose connections use only that schema)``."""
    if pg.startswith("postgresql://"):
        pg = "postgresql+psycopg://" + pg[len("postgresql://") :]
    schema = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg else "?"
    try:
        yield admin, schema, f"{pg}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    pg = _postgres_url()
    if pg is None:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    with postgres_schema(pg, "xc_test_") as (_, _, url):
        yield url


@pytest.fixture(scope="session")
def _migrated(database_url, tmp_path_factory) -> str:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "migrate", "TESTING": True}
    )
    upgrade_schema(app)
    with app.app_context():
        db.engine.dispose()
    return database_url


def make_test_app(database_url: str, instance_path: Path, **overrides):
    config = {"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "test-secret", "TESTING": True}
    config.update(overrides)
    os.environ.setdefault("XIAOCHE_INSTANCE_PATH", str(instance_path))
    return create_app(config)


@pytest.fixture
def app(_migrated, tmp_path):
    app = make_test_app(_migrated, tmp_path / "instance")
    with app.app_context():
        _empty_all_tables()
    yield app
    forget_access_log(app)  # its reads must not reach the next test's (same) database
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _empty_all_tables() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sample_bundle() -> dict:
    return copy.deepcopy(json.loads(SAMPLE_BUNDLE_PATH.read_text(encoding="utf-8")))


@pytest.fixture
def imported(app, sample_bundle):
    """The sample district, imported."""
    from backend.bundle import import_bundle

    with app.app_context():
        import_bundle(sample_bundle)
    return sample_bundle


def route_copies(bundle: dict, route_ids: list[str], suffix: str) -> list[dict]:
    """Copies of the bundle's routes with ``suffix`` on their ids (and their runs' ids): a bus
    of its own on the same roads. A route several buses list is a pool, driven by one of them
    per run (routing.fleet), so buses meant to drive the same trips in parallel need copies."""
    out = []
    for route in bundle["routes"]:
        if route["id"] in route_ids:
            route = dict(copy.deepcopy(route), id=f"{route['id']}{suffix}")
            for run in route.get("runs", ()):
                run["id"] = f"{run['id']}{suffix}"
            out.append(route)
    return out


def login(client, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}
