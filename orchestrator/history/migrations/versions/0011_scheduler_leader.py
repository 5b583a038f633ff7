"""schedulers.leading_since: which scheduler plans (the leader), shown on the dashboard;
runs.replaced_at: when a run delivered late by a site agent replaced the NON EXECUTEE recorded

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedulers") as batch:
        batch.add_column(sa.Column("leading_since", sa.DateTime(timezone=True), nullable=True))
    # Before leaders, every scheduler planned.
    op.execute("UPDATE schedulers SET leading_since = started_at")
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("replaced_at")
    with op.batch_alter_table("schedulers") as batch:
        batch.drop_column("leading_since")
