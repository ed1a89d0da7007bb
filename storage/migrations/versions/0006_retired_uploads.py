"""uploads retired with their branch: the identifier is unique among live uploads only

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LIVE = sa.text('retired_at IS NULL')
RETIRED = sa.text('retired_at IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint('uq_uploads_repo_id_branch_identifier', type_='unique')
        batch_op.create_index('uq_uploads_live_identifier', ['repo_id', 'branch', 'identifier'], unique=True,
                              sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.create_index('ix_uploads_retired', ['repo_id'], unique=False, sqlite_where=RETIRED,
                              postgresql_where=RETIRED)


def downgrade() -> None:
    op.execute(sa.text('DELETE FROM upload_files WHERE upload_id IN (SELECT id FROM uploads WHERE retired_at IS NOT NULL)'))
    op.execute(sa.text('DELETE FROM uploads WHERE retired_at IS NOT NULL'))
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_uploads_retired', sqlite_where=RETIRED, postgresql_where=RETIRED)
        batch_op.drop_index('uq_uploads_live_identifier', sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.create_unique_constraint('uq_uploads_repo_id_branch_identifier', ['repo_id', 'branch', 'identifier'])
        batch_op.drop_column('retired_at')
