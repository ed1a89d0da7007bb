"""repository listing index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.create_index('ix_repositories_live_listing', ['org_id', 'created_at', 'id'], unique=False,
                              sqlite_where=sa.text('deleted_at IS NULL'),
                              postgresql_where=sa.text('deleted_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_index('ix_repositories_live_listing', sqlite_where=sa.text('deleted_at IS NULL'),
                            postgresql_where=sa.text('deleted_at IS NULL'))
