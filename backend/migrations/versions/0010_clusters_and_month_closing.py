"""clusters (教联体) and their distance grid, 三级九等 levels of the subsidy policy, exchange
teachers' attendance confirmations and cards, month-end closing with frozen allowance lines, export
snapshots; subsidy entries say what they were paid on

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'clusters',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('district_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('core_school_id', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id']),
        sa.ForeignKeyConstraint(['core_school_id'], ['schools.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_clusters_district_id', 'clusters', ['district_id'])
    op.create_table(
        'cluster_members',
        sa.Column('cluster_id', sa.String(length=64), nullable=False),
        sa.Column('school_id', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id']),
        sa.ForeignKeyConstraint(['school_id'], ['schools.id']),
        sa.PrimaryKeyConstraint('cluster_id', 'school_id'))
    op.create_table(
        'grid_overrides',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('school_id', sa.String(length=64), nullable=False),
        sa.Column('distance_km', sa.Float(), nullable=False),
        sa.Column('effective_from', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('set_by', sa.String(length=64), nullable=False),
        sa.Column('set_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['school_id'], ['schools.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_grid_overrides_school_id', 'grid_overrides', ['school_id'])
    op.create_table(
        'attendance_confirmations',
        sa.Column('teacher_id', sa.String(length=64), nullable=False),
        sa.Column('school_id', sa.String(length=64), nullable=False),
        sa.Column('date', sa.String(length=10), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('confirmed_by', sa.String(length=64), nullable=False),
        sa.Column('confirmed_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['teacher_id'], ['teachers.id']),
        sa.ForeignKeyConstraint(['school_id'], ['schools.id']),
        sa.PrimaryKeyConstraint('teacher_id', 'school_id', 'date'))
    op.create_table(
        'month_closings',
        sa.Column('district_id', sa.String(length=64), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('closed_by', sa.String(length=64), nullable=False),
        sa.Column('closed_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id']),
        sa.PrimaryKeyConstraint('district_id', 'month'))
    op.create_table(
        'allowance_entries',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('teacher_id', sa.String(length=64), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('for_month', sa.String(length=7), nullable=False),
        sa.Column('school_id', sa.String(length=64), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('grade', sa.Integer(), nullable=False),
        sa.Column('per_month', sa.Float(), nullable=False),
        sa.Column('days_present', sa.Integer(), nullable=False),
        sa.Column('days_due', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.Column('corrects_entry_id', BIG, nullable=True),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['teacher_id'], ['teachers.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_allowance_entries_teacher_month', 'allowance_entries',
                    ['teacher_id', 'month'])
    op.create_table(
        'finance_exports',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('exported_by', sa.String(length=64), nullable=False),
        sa.Column('exported_at', sa.Float(), nullable=False),
        sa.Column('lines', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_finance_exports_month', 'finance_exports', ['month'])
    with op.batch_alter_table('subsidy_policies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('levels', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('road_factor', sa.Float(), nullable=True))
    with op.batch_alter_table('teachers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('subsidy_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grid_km', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('priced_km', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('grade', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('corrects_month', sa.String(length=7), nullable=True))


def downgrade():
    with op.batch_alter_table('subsidy_entries', schema=None) as batch_op:
        for column in ('corrects_month', 'grade', 'level', 'priced_km', 'grid_km'):
            batch_op.drop_column(column)
    with op.batch_alter_table('teachers', schema=None) as batch_op:
        batch_op.drop_column('card_id')
    with op.batch_alter_table('subsidy_policies', schema=None) as batch_op:
        batch_op.drop_column('road_factor')
        batch_op.drop_column('levels')
    op.drop_index('ix_finance_exports_month', table_name='finance_exports')
    op.drop_table('finance_exports')
    op.drop_index('ix_allowance_entries_teacher_month', table_name='allowance_entries')
    op.drop_table('allowance_entries')
    op.drop_table('month_closings')
    op.drop_table('attendance_confirmations')
    op.drop_index('ix_grid_overrides_school_id', table_name='grid_overrides')
    op.drop_table('grid_overrides')
    op.drop_table('cluster_members')
    op.drop_index('ix_clusters_district_id', table_name='clusters')
    op.drop_table('clusters')
