"""protected branches that take changes only through a stack's merge, and approving reviews a stack needs

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:35:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('branch_protections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_pull_request', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('required_approvals', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('branch_protections', schema=None) as batch_op:
        batch_op.drop_column('required_approvals')
        batch_op.drop_column('require_pull_request')
