"""runs keep their findings as data, and a script's own code apart from the HVB code

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("script_code", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("findings", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
    # Runs recorded before: a host script's code (GUEST_VSS_FAILED...) sat in error_code, where
    # only HVB codes belong (they name the runbooks).
    op.execute("UPDATE runs SET script_code = error_code, error_code = 'HVB-SCRIPT-FAILED' "
               "WHERE error_code IS NOT NULL AND error_code NOT LIKE 'HVB-%'")


def downgrade() -> None:
    op.execute("UPDATE runs SET error_code = script_code WHERE script_code IS NOT NULL")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("findings")
        batch.drop_column("script_code")
