"""The one door to the history database (SQLite by default, PostgreSQL for several workers).

SQLAlchemy and Alembic exceptions are translated into :class:`HistoryError` here. URLs are
shown with their password hidden.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import HistoryError, SchemaOutOfDate
from orchestrator.private import tighten

log = logging.getLogger(__name__)


def shown_url(url: str) -> str:
    """The URL as it may appear in messages and logs: password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def open_engine(url: str) -> Engine:
    """An engine for ``url``; creates the folder of a SQLite file. Raises HistoryError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise HistoryError(
            f"database URL {shown_url(url)!r} is not valid (e.g. sqlite:///var/hvbackup.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                _private_sqlite(Path(parsed.database))
            except OSError as exc:
                raise HistoryError(
                    f"cannot create the folder of the history database {parsed.database}: "
                    f"{exc.strerror}"
                ) from None
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise HistoryError(f"cannot use database {shown_url(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgresql_settings)
    return engine


def _postgresql_settings(dbapi_connection: Any, _record: Any) -> None:
    """No JIT compilation: the history's statements are short, and PostgreSQL's cost estimate
    for a correlated subquery per job (the dashboard's) makes it compile for tens of
    milliseconds a statement that runs in one."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()


def _private_sqlite(path: Path) -> None:
    """The history file (and SQLite's journal files beside it) readable by this account only:
    created 0600 before SQLite opens it (its -wal and -shm files take its mode), an existing
    one tightened. Its folder is created 0700 when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for each in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm",
                                                                      "-journal"))):
        tighten(each)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the dashboard read while the scheduler writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def _alembic_config(engine: Engine) -> Iterator[tuple[Any, Any]]:
    from alembic.config import Config as AlembicConfig

    with resources.as_file(resources.files("orchestrator.history") / "migrations") as where:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(where))
        try:
            with engine.begin() as connection:
                cfg.attributes["connection"] = connection
                yield cfg, connection
        except HistoryError:
            raise
        except SQLAlchemyError as exc:
            raise HistoryError(
                f"history database {shown_url(str(engine.url))}: {_reason(exc)}",
                permanent=False,
            ) from None


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision. Idempotent; safe to run concurrently on
    PostgreSQL (an advisory lock serialises it). Returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    with _alembic_config(engine) as (cfg, _connection):
        command.upgrade(cfg, "head")
    after = current_revision(engine)
    assert after is not None
    if before != after:
        log.info("history database upgraded from %s to %s", before or "empty", after)
    return before, after


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    with resources.as_file(resources.files("orchestrator.history") / "migrations") as where:
        script = ScriptDirectory(str(where))
        head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, ``None`` when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            rev: str | None = MigrationContext.configure(connection).get_current_revision()
            return rev
    except SQLAlchemyError as exc:
        raise HistoryError(
            f"cannot open the history database {shown_url(str(engine.url))}: {_reason(exc)}",
            permanent=False,
        ) from None


def require_current(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the schema is at the newest revision."""
    current = current_revision(engine)
    if current != head_revision():
        state = "has no schema yet" if current is None else f"is at revision {current}"
        raise SchemaOutOfDate(
            f"the history database {shown_url(str(engine.url))} {state}: run "
            "'hvbackup db upgrade -c FILE' first"
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
