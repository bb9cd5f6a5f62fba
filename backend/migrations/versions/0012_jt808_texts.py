"""jt808_texts: texts to JT/T 808 terminals (0x8300), the outbox the gateway sends from;
device_models and devices.model: a device model whose firmware computes the check byte wrong

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03 15:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'jt808_texts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('vehicle_id', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.String(length=64), nullable=False),
        sa.Column('text', sa.Unicode(length=1000), nullable=False),
        sa.Column('emergency', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('serial', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.Float(), nullable=True),
        sa.Column('answered_at', sa.Float(), nullable=True),
        sa.Column('result', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_jt808_texts_vehicle_id', 'jt808_texts', ['vehicle_id'], unique=False)
    op.create_index('ix_jt808_texts_status', 'jt808_texts', ['status'], unique=False)
    op.create_table(
        'device_models',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.Unicode(length=200), nullable=True),
        sa.Column('jt808_accept_bad_check', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('model')
    op.drop_table('device_models')
    op.drop_index('ix_jt808_texts_status', table_name='jt808_texts')
    op.drop_index('ix_jt808_texts_vehicle_id', table_name='jt808_texts')
    op.drop_table('jt808_texts')
