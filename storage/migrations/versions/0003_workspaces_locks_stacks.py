"""workspaces locks stacks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 23:13:30.286387
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stacks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=True),
    sa.Column('parent_stack_id', sa.String(length=40), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('bookmark', sa.String(length=255), nullable=False),
    sa.Column('base_branch', sa.String(length=255), nullable=False),
    sa.Column('base_commit', sa.String(length=64), nullable=False),
    sa.Column('head_commit', sa.String(length=64), nullable=False),
    sa.Column('commits', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merged_sha', sa.String(length=64), nullable=True),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_stacks_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stacks'))
    )
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.create_index('ix_stacks_repo_status', ['repo_id', 'status'], unique=False)

    op.create_table('workspaces',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('agent_name', sa.String(length=200), nullable=True),
    sa.Column('base_commit', sa.String(length=64), nullable=True),
    sa.Column('current_commit', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_workspaces_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspaces'))
    )
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.create_index('ix_workspaces_repo_status', ['repo_id', 'status'], unique=False)

    op.create_table('path_locks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('patterns', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by_key_id', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_path_locks_repo_id_repositories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_path_locks_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_path_locks'))
    )
    with op.batch_alter_table('path_locks', schema=None) as batch_op:
        batch_op.create_index('ix_path_locks_repo_active', ['repo_id', 'released_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_path_locks_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('stack_reviews',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('stack_id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('reviewer_key_id', sa.String(length=40), nullable=True),
    sa.Column('reviewer_name', sa.String(length=200), nullable=True),
    sa.Column('head_commit', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stack_id'], ['stacks.id'], name=op.f('fk_stack_reviews_stack_id_stacks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stack_reviews'))
    )
    with op.batch_alter_table('stack_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stack_reviews_stack_id'), ['stack_id'], unique=False)

    op.create_table('workspace_files',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('blob_sha', sa.String(length=64), nullable=True),
    sa.Column('mode', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_workspace_files_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace_files')),
    sa.UniqueConstraint('workspace_id', 'path', name=op.f('uq_workspace_files_workspace_id_path'))
    )
    with op.batch_alter_table('workspace_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workspace_files_workspace_id'), ['workspace_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('workspace_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspace_files_workspace_id'))

    op.drop_table('workspace_files')
    with op.batch_alter_table('stack_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stack_reviews_stack_id'))

    op.drop_table('stack_reviews')
    with op.batch_alter_table('path_locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_path_locks_workspace_id'))
        batch_op.drop_index('ix_path_locks_repo_active')

    op.drop_table('path_locks')
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_index('ix_workspaces_repo_status')

    op.drop_table('workspaces')
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.drop_index('ix_stacks_repo_status')

    op.drop_table('stacks')
