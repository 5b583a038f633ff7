"""subscribed volumes moved up a tier, and what each client's contract says (quota.on_overrun)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_tier_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("billed_from", sa.Date(), nullable=False),
        sa.Column("from_bytes", sa.BigInteger(), nullable=False),
        sa.Column("to_bytes", sa.BigInteger(), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"],
                                name=op.f("fk_quota_tier_moves_client_id_clients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_tier_moves")),
    )
    op.create_index(op.f("ix_quota_tier_moves_client_id"), "quota_tier_moves", ["client_id"],
                    unique=False)
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("quota_on_overrun", sa.String(length=20), nullable=False,
                                   server_default="block"))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("quota_on_overrun")
    op.drop_index(op.f("ix_quota_tier_moves_client_id"), table_name="quota_tier_moves")
    op.drop_table("quota_tier_moves")
