"""acknowledgements of alerts (quota, missing report) have no job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("acknowledgements") as batch:
        batch.alter_column("job_id", existing_type=sa.Integer(), nullable=True)
    op.create_index(op.f("ix_acknowledgements_alert_id"), "acknowledgements", ["alert_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_acknowledgements_alert_id"), table_name="acknowledgements")
    op.execute("DELETE FROM acknowledgements WHERE job_id IS NULL")
    with op.batch_alter_table("acknowledgements") as batch:
        batch.alter_column("job_id", existing_type=sa.Integer(), nullable=False)
