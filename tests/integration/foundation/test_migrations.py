"""Migrations build the whole schema from empty, on SQLite and PostgreSQL alike."""

from sqlalchemy import inspect

from backend.extensions import db


def test_migrations_build_every_table_of_the_models(app):
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
    expected = set(db.metadata.tables)
    assert expected <= tables, f"missing after upgrade: {expected - tables}"
    assert "alembic_version" in tables


def test_schema_after_migrations_matches_the_models(app):
    """No model change is left without a migration (what `xiaoche db check` reports)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backend.ping_partitions import is_partition_name

    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,  # the day partitions of pings are no model's tables
            "include_name": lambda name, type_, _parents: not (
                type_ == "table" and is_partition_name(name))})
        diff = compare_metadata(context, db.metadata)
    assert diff == []
