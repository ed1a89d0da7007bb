"""webhooks count the tries that failed in a row and say why they were switched off

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 09:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failures_in_a_row', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('switched_off_because', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('switched_off_because')
        batch_op.drop_column('failures_in_a_row')
