"""baie usage for quotas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:09:10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "baie_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("baie", sa.String(length=64), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_stored", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"],
                                name=op.f("fk_baie_usage_client_id_clients"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baie_usage")),
    )
    op.create_index(op.f("ix_baie_usage_client_id_baie_measured_at"), "baie_usage",
                    ["client_id", "baie", "measured_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_baie_usage_client_id_baie_measured_at"), table_name="baie_usage")
    op.drop_table("baie_usage")
