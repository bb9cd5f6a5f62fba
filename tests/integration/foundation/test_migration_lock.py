"""Two `xiaoche migrate` at once on a fresh PostgreSQL schema (what compose's services did, each
migrating at start): they take turns on an advisory lock, both succeed, the schema is built once.

The test holds the lock itself first, so both are seen waiting on it before either has begun —
without the lock they would not wait, and would race to create the same tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect, text

from backend.database import migration_lock_key
from backend.extensions import db
from tests.conftest import postgres_schema

pytestmark = pytest.mark.skipif(
    not os.environ.get("XIAOCHE_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="advisory locks are PostgreSQL's (CI's second run)")


@pytest.fixture
def fresh_schema():
    with postgres_schema(os.environ["XIAOCHE_TEST_DATABASE_URL"], "xc_migrate_") as made:
        yield made


def waiting_on_the_lock(conn, keys) -> int:
    return conn.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid::bigint = :c AND objid::bigint = :k AND objsubid = 2"),
        dict(zip(("c", "k"), keys, strict=True))).scalar()


def test_two_concurrent_migrations_take_turns(fresh_schema, tmp_path):
    admin, schema, url = fresh_schema
    keys = migration_lock_key(schema)
    env = {**os.environ, "XIAOCHE_DATABASE_URL": url, "XIAOCHE_INSTANCE_PATH": str(tmp_path)}
    with admin.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:c, :k)"), {"c": keys[0], "k": keys[1]})
        holder.commit()
        runs = [subprocess.Popen([sys.executable, "-m", "backend.cli", "migrate"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(2)]
        try:
            deadline = time.time() + 60
            while waiting_on_the_lock(holder, keys) < 2:
                assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
                assert time.time() < deadline, "the two migrations never waited on the lock"
                time.sleep(0.1)
            assert "alembic_version" not in inspect(admin).get_table_names(schema=schema)
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:c, :k)"),
                           {"c": keys[0], "k": keys[1]})
            holder.commit()
        outputs = [r.communicate(timeout=180)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert all("another process is migrating schema" in out for out in outputs), outputs
    revisions = {out.strip().splitlines()[-1] for out in outputs}
    assert len(revisions) == 1 and revisions.pop().startswith("xiaoche: database schema at "
                                                              "revision ")
    tables = set(inspect(admin).get_table_names(schema=schema))
    assert set(db.metadata.tables) <= tables
