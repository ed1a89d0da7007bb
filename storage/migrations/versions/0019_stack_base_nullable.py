"""a stack submitted in a repository without commits has no base commit (it read its own head)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 19:35:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.alter_column('base_commit', existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE stacks SET base_commit = head_commit WHERE base_commit IS NULL")
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.alter_column('base_commit', existing_type=sa.String(length=64), nullable=False)
