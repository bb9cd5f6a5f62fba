"""route_runs.vehicle_id: the vehicle planned to drive a run (its block)

A pool route (listed by several vehicles) has its runs driven by whichever bus leaves; with a
planned vehicle per run the tracker gives each bus its own runs first, so buses that leave in
another order than planned keep their runs. Existing runs have none (any vehicle of the route).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('route_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vehicle_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('route_runs', schema=None) as batch_op:
        batch_op.drop_column('vehicle_id')
