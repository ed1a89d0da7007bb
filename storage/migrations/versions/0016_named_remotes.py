"""named remotes beside origin (the repository_url)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 10:15:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('remotes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('credentials', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_remotes_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remotes')),
    sa.UniqueConstraint('repo_id', 'name', name=op.f('uq_remotes_repo_id_name'))
    )


def downgrade() -> None:
    op.drop_table('remotes')
