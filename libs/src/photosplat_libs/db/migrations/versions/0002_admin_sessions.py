"""admin sessions; log lines indexed by (job_id, id)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_admin_sessions'))
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_sessions_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.create_index('ix_log_lines_job_id_id', ['job_id', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_log_lines_job_id'))


def downgrade() -> None:
    with op.batch_alter_table('log_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_log_lines_job_id'), ['job_id'], unique=False)
        batch_op.drop_index('ix_log_lines_job_id_id')

    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_sessions_expires_at'))

    op.drop_table('admin_sessions')
