"""job names: a user-facing name for a job (runs are listed and chosen by it)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Nullable: jobs stored before this revision (and jobs launched without a name) show a default
built from their settings (jobs.run_names), so nothing needs backfilling.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('name', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('name')
