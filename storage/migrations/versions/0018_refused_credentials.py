"""which kept remote token the remote last refused (hoody's `authenticated`: whether the stored credentials are valid)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_credentials_refused', sa.String(length=64), nullable=True))
    with op.batch_alter_table('remotes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credentials_refused', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('remotes', schema=None) as batch_op:
        batch_op.drop_column('credentials_refused')
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('upstream_credentials_refused')
