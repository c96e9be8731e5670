"""labelling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_projects',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('dataset_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('task_type', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('overlap', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('label_projects', schema=None) as batch_op:
        batch_op.create_index('ix_label_projects_project_created', ['project_id', 'created_at'], unique=False)

    op.create_table('label_items',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('label_project_id', sa.String(length=32), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prelabel', sa.JSON(), nullable=True),
    sa.Column('prelabel_source', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['label_project_id'], ['label_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('label_project_id', 'row_index', name='uq_label_item_row')
    )
    op.create_table('label_annotations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.String(length=32), nullable=False),
    sa.Column('label_project_id', sa.String(length=32), nullable=False),
    sa.Column('annotator', sa.String(length=32), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('skipped', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['label_project_id'], ['label_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id', 'annotator', name='uq_label_annotation_item_annotator')
    )
    with op.batch_alter_table('label_annotations', schema=None) as batch_op:
        batch_op.create_index('ix_label_annotations_project_annotator', ['label_project_id', 'annotator'], unique=False)

    op.create_table('label_assignments',
    sa.Column('label_project_id', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.String(length=32), nullable=False),
    sa.Column('annotator', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['label_project_id'], ['label_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', 'annotator')
    )
    with op.batch_alter_table('label_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_label_assignments_project_annotator', ['label_project_id', 'annotator'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('label_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_label_assignments_project_annotator')

    op.drop_table('label_assignments')
    with op.batch_alter_table('label_annotations', schema=None) as batch_op:
        batch_op.drop_index('ix_label_annotations_project_annotator')

    op.drop_table('label_annotations')
    op.drop_table('label_items')
    with op.batch_alter_table('label_projects', schema=None) as batch_op:
        batch_op.drop_index('ix_label_projects_project_created')

    op.drop_table('label_projects')
