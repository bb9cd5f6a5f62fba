"""pings partitioned by day on PostgreSQL; access_log (issue 17)

On PostgreSQL the plain ``pings`` table is replaced by one ``PARTITION BY RANGE (ts)``
(``backend.ping_partitions`` says why ``ts``): a partition per UTC day that holds rows, the days
from yesterday to ``XIAOCHE_PING_PARTITIONS_AHEAD_DAYS`` ahead, and a default partition; the
rows are copied over with their ids (the id sequence is kept), then the constraints and the
index are built once on the full table — the primary key becomes ``(id, ts)``, as a partitioned
table's unique constraints must hold the partition key. It runs in the migration's one
transaction: a failure leaves the old table as it was. SQLite keeps the plain table.

Revision ID: 0013
Revises: 0012 (written on 0009; re-chained onto main's head 0012 when main moved)
Create Date: 2026-12-03 15:40:00.000000

"""
import os
import time

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

DAY_S = 86400
YEAR_2000 = 946684800
COLUMNS = ("id, device_id, vehicle_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, "
           "alt_m, battery_pct, seq, received_at")
COLUMN_DDL = """
    id bigint NOT NULL DEFAULT nextval('pings_id_seq'::regclass),
    device_id varchar(64) NOT NULL,
    vehicle_id varchar(64),
    ts double precision NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    speed_kmh double precision,
    heading_deg double precision,
    accuracy_m double precision,
    alt_m double precision,
    battery_pct double precision,
    seq bigint,
    received_at double precision NOT NULL
"""


def upgrade():
    op.create_table('access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('route_id', sa.String(length=64), nullable=True),
    sa.Column('first_at', sa.Float(), nullable=False),
    sa.Column('last_at', sa.Float(), nullable=False),
    sa.Column('reads', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index('ix_access_log_first_at', ['first_at'], unique=False)
        batch_op.create_index('ix_access_log_user_id_first_at', ['user_id', 'first_at'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        _partition_pings()


def _partition_pings():
    from backend.ping_partitions import DEFAULT_PARTITION, create_day

    conn = op.get_bind()
    op.execute("ALTER TABLE pings RENAME TO pings_unpartitioned")
    op.execute("ALTER TABLE pings_unpartitioned RENAME CONSTRAINT pk_pings TO pk_pings_unpartitioned")
    op.execute("ALTER TABLE pings_unpartitioned RENAME CONSTRAINT uq_pings_device_ts "
               "TO uq_pings_unpartitioned_device_ts")
    op.execute("ALTER INDEX ix_pings_vehicle_ts RENAME TO ix_pings_unpartitioned_vehicle_ts")
    op.execute(f"CREATE TABLE pings ({COLUMN_DDL}) PARTITION BY RANGE (ts)")
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF pings DEFAULT")
    today = int(time.time() // DAY_S)
    ahead = int(float(os.environ.get('XIAOCHE_PING_PARTITIONS_AHEAD_DAYS') or 7))
    days = set(range(today - 1, today + ahead + 1))
    # a day of each stored row's (a clock far off stays in the default partition)
    days.update(int(d) for d in conn.execute(sa.text(
        "SELECT DISTINCT floor(ts / 86400) FROM pings_unpartitioned "
        f"WHERE ts >= {YEAR_2000} AND ts < {(today + ahead + 1) * DAY_S}")).scalars())
    for day in sorted(days):
        create_day(conn, day)
    op.execute(f"INSERT INTO pings ({COLUMNS}) SELECT {COLUMNS} FROM pings_unpartitioned")
    op.execute("ALTER SEQUENCE pings_id_seq OWNED BY pings.id")
    op.execute("DROP TABLE pings_unpartitioned")
    op.execute("ALTER TABLE pings ADD CONSTRAINT pk_pings PRIMARY KEY (id, ts)")
    op.execute("ALTER TABLE pings ADD CONSTRAINT uq_pings_device_ts UNIQUE (device_id, ts)")
    op.execute("CREATE INDEX ix_pings_vehicle_ts ON pings (vehicle_id, ts)")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE pings RENAME TO pings_partitioned")
        op.execute("ALTER TABLE pings_partitioned RENAME CONSTRAINT pk_pings TO pk_pings_partitioned")
        op.execute("ALTER TABLE pings_partitioned RENAME CONSTRAINT uq_pings_device_ts "
                   "TO uq_pings_partitioned_device_ts")
        op.execute("ALTER INDEX ix_pings_vehicle_ts RENAME TO ix_pings_partitioned_vehicle_ts")
        op.execute(f"CREATE TABLE pings ({COLUMN_DDL})")
        op.execute(f"INSERT INTO pings ({COLUMNS}) SELECT {COLUMNS} FROM pings_partitioned")
        op.execute("ALTER SEQUENCE pings_id_seq OWNED BY pings.id")
        op.execute("DROP TABLE pings_partitioned")  # and every partition with it
        op.execute("ALTER TABLE pings ADD CONSTRAINT pk_pings PRIMARY KEY (id)")
        op.execute("ALTER TABLE pings ADD CONSTRAINT uq_pings_device_ts UNIQUE (device_id, ts)")
        op.execute("CREATE INDEX ix_pings_vehicle_ts ON pings (vehicle_id, ts)")
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_user_id_first_at')
        batch_op.drop_index('ix_access_log_first_at')

    op.drop_table('access_log')
