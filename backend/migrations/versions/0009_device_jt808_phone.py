"""devices.jt808_phone: the phone number a JT/T 808 terminal puts in every frame's header;
devices.jt808_accept_bad_check: a terminal whose firmware computes the check byte wrong

The JT/T 808 gateway knows a terminal by it (registration, authentication, every location);
compared without leading zeros, since a 2013 header has 12 digits and a 2019 header 20.
Existing devices have none (they report over MQTT or HTTP).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jt808_phone', sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f('ix_devices_jt808_phone'), ['jt808_phone'], unique=False)
        batch_op.add_column(sa.Column('jt808_accept_bad_check', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('jt808_accept_bad_check')
        batch_op.drop_index(batch_op.f('ix_devices_jt808_phone'))
        batch_op.drop_column('jt808_phone')
