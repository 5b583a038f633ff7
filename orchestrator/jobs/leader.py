"""Which scheduler plans: one leader among the schedulers (``hvbackup run``) that share one
history database.

Planning (claiming due runs, recording NON EXECUTEE, the alerts, the reports) and the
maintenance run on the leader only; the others are followers: they beat (the dashboard lists
them) and try to take the lead every second, so that one takes over within a few seconds of
the leader's death.

* **PostgreSQL**: a session-level advisory lock, ``pg_try_advisory_lock``, taken on a
  connection of its own (detached from the pool: closing it really closes it) and held as long
  as the leadership. PostgreSQL releases it when that connection ends: the leader's process
  stopped or was killed (its socket closes at once), or its machine vanished (the server's TCP
  keepalives, set short on that connection, end it within about 25 s). A leader that loses its
  connection stops planning at once and tries again like a follower.
* **SQLite** (one machine): every scheduler leads, as before: the history's claims are atomic
  anyway, so two schedulers started by mistake still never run a job twice.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# A fixed key, distinct from the one migrations take ("hvback"): "hvlead".
LEADER_KEY = 0x6876_6C65_6164

# The server ends the leader's connection when its machine stops answering: 10 s idle, then
# 3 probes 5 s apart.
_KEEPALIVES = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5",
               "SET tcp_keepalives_count = 3")


class Leadership(Protocol):
    """Whether this process plans."""

    def lead(self) -> bool:
        """True when this process leads now (taking the lead when it is free). Never raises:
        a database away means not leading."""
        ...

    def release(self) -> None:
        """Give the lead up (a follower may take it at once). Idempotent."""
        ...


class AlwaysLeader:
    """SQLite: one machine, every scheduler plans (claims are atomic in the history)."""

    def lead(self) -> bool:
        return True

    def release(self) -> None:
        pass


class AdvisoryLock:
    """PostgreSQL: the lead is a session-level advisory lock on a connection of its own (a
    follower keeps its connection too, and tries the lock on it)."""

    def __init__(self, engine: Engine, key: int = LEADER_KEY) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None
        self._held = False

    def lead(self) -> bool:
        try:
            conn = self._connection()
            if self._held:
                conn.execute(text("SELECT 1"))
            else:
                self._held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                               {"k": self._key}).scalar())
            return self._held
        except SQLAlchemyError as exc:
            if self._held:
                log.warning("the database connection that held the lead is lost (%s): "
                            "planning stops until the lead is taken again", _first_line(exc))
            else:
                log.debug("cannot reach the database to take the lead: %s", exc)
            self._drop()
            return False

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.execution_options(isolation_level="AUTOCOMMIT").connect()
            try:
                conn.detach()  # closing it closes the session, and PostgreSQL frees the lock
                for statement in _KEEPALIVES:
                    conn.execute(text(statement))
            except SQLAlchemyError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def release(self) -> None:
        if self._conn is not None and self._held:
            with suppress(SQLAlchemyError):  # closing below frees it all the same
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with suppress(SQLAlchemyError):
                conn.close()


def leadership_for(engine: Engine | None) -> Leadership:
    """The leadership that fits the history's database."""
    if engine is not None and engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    return AlwaysLeader()


def _first_line(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
