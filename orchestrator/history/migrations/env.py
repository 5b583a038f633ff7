"""Alembic environment: runs on the connection handed over by orchestrator.history.db."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import text

from orchestrator.history.models import Base, UTCDateTime

# A fixed key: concurrent `hvbackup db upgrade` on PostgreSQL wait for each other.
_PG_LOCK_KEY = 0x6876_6261_636B  # "hvback"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    # Migrations must not import the models (they change; migrations are frozen history).
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `hvbackup db upgrade`")
run_migrations_online()
