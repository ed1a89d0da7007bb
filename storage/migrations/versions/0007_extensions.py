"""extensions and their runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:08:24.444605
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('extensions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('prompt_digest', sa.String(length=64), nullable=False),
    sa.Column('presets', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_extensions_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extensions')),
    sa.UniqueConstraint('org_id', 'prompt_digest', name=op.f('uq_extensions_org_id_prompt_digest'))
    )
    with op.batch_alter_table('extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extensions_org_id'), ['org_id'], unique=False)

    op.create_table('extension_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('extension_id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('branch', sa.Text(), nullable=False),
    sa.Column('base_commit', sa.String(length=64), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('presets', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_extension_runs_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_extension_runs_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extension_runs'))
    )
    with op.batch_alter_table('extension_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extension_runs_extension_id'), ['extension_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_extension_runs_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_extension_runs_repo_id'), ['repo_id'], unique=False)
        batch_op.create_index('ix_extension_runs_status', ['status', 'heartbeat_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('extension_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_extension_runs_status')
        batch_op.drop_index(batch_op.f('ix_extension_runs_repo_id'))
        batch_op.drop_index(batch_op.f('ix_extension_runs_org_id'))
        batch_op.drop_index(batch_op.f('ix_extension_runs_extension_id'))

    op.drop_table('extension_runs')
    with op.batch_alter_table('extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_extensions_org_id'))

    op.drop_table('extensions')
