"""jobs say since when their schedule is expected (a changed schedule expects nothing before)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("expected_since", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE jobs SET expected_since = created_at")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("expected_since", existing_type=sa.DateTime(timezone=True),
                           nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("expected_since")
