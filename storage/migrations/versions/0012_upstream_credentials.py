"""a workspace remote's token, sealed (agirunner settings.credentials, hoody remotes)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_credentials', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('upstream_credentials')
