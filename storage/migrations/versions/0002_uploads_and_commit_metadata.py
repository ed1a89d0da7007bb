"""uploads and commit metadata

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:05:03.033701
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commit_meta',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('sha', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('upload_identifier', sa.String(length=200), nullable=True),
    sa.Column('intent', sa.JSON(), nullable=True),
    sa.Column('actor_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_commit_meta_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commit_meta')),
    sa.UniqueConstraint('repo_id', 'sha', name=op.f('uq_commit_meta_repo_id_sha'))
    )
    with op.batch_alter_table('commit_meta', schema=None) as batch_op:
        batch_op.create_index('ix_commit_meta_repo_created', ['repo_id', 'created_at'], unique=False)

    op.create_table('uploads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repo_id', sa.String(length=40), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=False),
    sa.Column('identifier', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('commit_sha', sa.String(length=64), nullable=True),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], name=op.f('fk_uploads_repo_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads')),
    sa.UniqueConstraint('repo_id', 'branch', 'identifier', name=op.f('uq_uploads_repo_id_branch_identifier'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_repo_id'), ['repo_id'], unique=False)

    op.create_table('upload_files',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('upload_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('expected_sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_path', sa.Text(), nullable=False),
    sa.Column('received_sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_upload_files_upload_id_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upload_files')),
    sa.UniqueConstraint('upload_id', 'name', name=op.f('uq_upload_files_upload_id_name'))
    )
    with op.batch_alter_table('upload_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_files_upload_id'), ['upload_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('upload_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_files_upload_id'))

    op.drop_table('upload_files')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_repo_id'))

    op.drop_table('uploads')
    with op.batch_alter_table('commit_meta', schema=None) as batch_op:
        batch_op.drop_index('ix_commit_meta_repo_created')

    op.drop_table('commit_meta')
