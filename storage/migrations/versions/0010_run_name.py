"""the name of an agent run started as a planning workflow

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:00:19.667461
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('extension_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('extension_runs', schema=None) as batch_op:
        batch_op.drop_column('name')

