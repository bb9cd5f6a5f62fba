"""route_runs.source: who made each run, so an import deletes only the runs it owns

A bundle (or a GTFS feed) owns the district's timetable; ``xiaoche demo`` owns the runs it
generates for its simulated buses; ``substitute`` is reserved for runs made for a substitute bus.
Runs stored before this revision were all imported: the demo's are told apart by the id prefix
it gives them (``demo-``), every other one came from a bundle.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('route_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='bundle', nullable=False))
    op.execute("UPDATE route_runs SET source = 'demo' WHERE id LIKE 'demo-%'")


def downgrade():
    with op.batch_alter_table('route_runs', schema=None) as batch_op:
        batch_op.drop_column('source')
