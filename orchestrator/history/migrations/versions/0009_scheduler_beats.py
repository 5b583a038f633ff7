"""schedulers: when each scheduler was last seen (the dashboard says when it stopped)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedulers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedulers")),
        sa.UniqueConstraint("name", name=op.f("uq_schedulers_name")),
    )
    op.create_index(op.f("ix_schedulers_seen_at"), "schedulers", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_schedulers_seen_at"), table_name="schedulers")
    op.drop_table("schedulers")
