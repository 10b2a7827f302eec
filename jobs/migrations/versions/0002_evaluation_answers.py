"""evaluation storage: subject label, stored answers, one judgement per (sample, aspect, judge)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

The 0001 judgements table was never written to (evaluate jobs were rejected until this
revision), so it is recreated with its final shape instead of altered column by column.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evaluations') as batch:
        batch.add_column(sa.Column('subject', sa.String(length=255), nullable=True))
    op.drop_index(op.f('ix_judgements_evaluation_id'), table_name='judgements')
    op.drop_table('judgements')
    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('sample_id', sa.String(length=255), nullable=False),
    sa.Column('question_id', sa.String(length=255), nullable=False),
    sa.Column('aspect', sa.String(length=32), nullable=False),
    sa.Column('judge', sa.String(length=255), nullable=False),
    sa.Column('raw_output', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('heuristic', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'sample_id', 'aspect', 'judge')
    )
    op.create_index(op.f('ix_judgements_evaluation_id'), 'judgements', ['evaluation_id'], unique=False)
    op.create_table('eval_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('sample_id', sa.String(length=255), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'sample_id')
    )
    op.create_index(op.f('ix_eval_answers_evaluation_id'), 'eval_answers', ['evaluation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_eval_answers_evaluation_id'), table_name='eval_answers')
    op.drop_table('eval_answers')
    op.drop_index(op.f('ix_judgements_evaluation_id'), table_name='judgements')
    op.drop_table('judgements')
    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.String(length=255), nullable=False),
    sa.Column('stage_texts', sa.JSON(), nullable=False),
    sa.Column('judge', sa.String(length=255), nullable=False),
    sa.Column('raw_output', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'question_id', 'judge')
    )
    op.create_index(op.f('ix_judgements_evaluation_id'), 'judgements', ['evaluation_id'], unique=False)
    with op.batch_alter_table('evaluations') as batch:
        batch.drop_column('subject')
