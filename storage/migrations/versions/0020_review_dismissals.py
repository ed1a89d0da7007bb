"""a review dismissed (GitHub's dismissal): it no longer counts for the merge

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 19:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stack_reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dismissed_by_key_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('dismissal_message', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stack_reviews', schema=None) as batch_op:
        batch_op.drop_column('dismissal_message')
        batch_op.drop_column('dismissed_by_key_id')
        batch_op.drop_column('dismissed_at')
