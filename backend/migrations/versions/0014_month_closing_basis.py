"""month_closings.basis: what a closed month's allowance was priced on (each teacher's due
days and bands), frozen at the close so later changes never re-price the closed month

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('month_closings', sa.Column('basis', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('month_closings') as batch_op:
        batch_op.drop_column('basis')
