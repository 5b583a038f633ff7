"""The agent's spool: the runs it made, kept on its own disk until the server has them.

A SQLite file in the agent's state folder. A run is queued whole (run, steps, log lines,
figures) under its uid; queuing the same uid again changes nothing. :func:`deliver` posts what
waits, oldest first, and marks each run delivered only once the server answered 200 for it:
a run whose answer was lost is posted again and the server, keyed by uid, records it once.
A run the server refuses for good is kept, marked refused with the reason, and no longer
sent; the others go on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.agent.protocol import RunIn
from orchestrator.agent.server import RunRefused, Server
from orchestrator.errors import ServerUnreachable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    uid TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT,
    refused_at TEXT,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    run_uid TEXT NOT NULL,
    taken_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Delivery:
    delivered: int  # runs the server has now (including ones it had already)
    refused: list[str]  # "uid: reason" of runs refused for good in this pass
    waiting: int  # runs still to deliver
    unreachable: str | None  # why delivery stopped early, None when it went through
    # The runs delivered in this pass: (uid, "client/job", scheduled_for, finished_at, steps,
    # log lines), for the agent to say which arrived late.
    sent: list[tuple[str, str, datetime, datetime, int, int]] = field(default_factory=list)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def add(self, run: RunIn, now: datetime) -> bool:
        """Queue ``run``; False when that uid is queued (or was delivered) already."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO runs (uid, body, queued_at) VALUES (?, ?, ?)",
                (run.uid, run.model_dump_json(), now.isoformat()))
            return cursor.rowcount == 1

    def uids(self) -> set[str]:
        """Every run ever queued, delivered or not."""
        with self._db() as db:
            return {uid for (uid,) in db.execute("SELECT uid FROM runs")}

    def request_taken(self, request_id: int) -> bool:
        """Whether the server's run-now request ``request_id`` was run already."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM requests WHERE id = ?",
                              (request_id,)).fetchone() is not None

    def take_request(self, request_id: int, run_uid: str, now: datetime) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO requests (id, run_uid, taken_at) VALUES (?, ?, ?)",
                       (request_id, run_uid, now.isoformat()))

    def request_of(self, run_uid: str) -> int | None:
        """The run-now request ``run_uid`` answered, if any."""
        with self._db() as db:
            row = db.execute("SELECT id FROM requests WHERE run_uid = ?", (run_uid,)).fetchone()
        return int(row[0]) if row else None

    def waiting(self) -> list[RunIn]:
        """Runs still to deliver, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT body FROM runs WHERE delivered_at IS NULL AND "
                              "refused_at IS NULL ORDER BY queued_at, uid").fetchall()
        return [RunIn.model_validate(json.loads(body)) for (body,) in rows]

    def refused(self) -> list[tuple[str, str]]:
        with self._db() as db:
            return [(uid, reason or "") for uid, reason in db.execute(
                "SELECT uid, last_error FROM runs WHERE refused_at IS NOT NULL ORDER BY uid")]

    def mark(self, uid: str, column: str | None, now: datetime, error: str | None) -> None:
        """Count an attempt at ``uid`` with its error; ``column`` (delivered_at, refused_at)
        set to ``now`` when the attempt settled it."""
        assert column in (None, "delivered_at", "refused_at")
        with self._db() as db:
            db.execute("UPDATE runs SET attempts = attempts + 1, last_error = ? WHERE uid = ?",
                       (error, uid))
            if column is not None:
                db.execute(f"UPDATE runs SET {column} = ? WHERE uid = ?",
                           (now.isoformat(), uid))


def deliver(spool: Spool, server: Server, now: datetime) -> Delivery:
    """Post every waiting run to ``server``. Stops at the first ServerUnreachable (the rest
    waits for the next pass); ServerRefused (the agent's token) goes up."""
    delivered, refused = 0, []
    sent: list[tuple[str, str, datetime, datetime, int, int]] = []
    for run in spool.waiting():
        try:
            server.post_run(run)
        except RunRefused as exc:
            spool.mark(run.uid, "refused_at", now, str(exc))
            refused.append(f"{run.uid}: {exc}")
            continue
        except ServerUnreachable as exc:
            spool.mark(run.uid, None, now, exc.message)
            return Delivery(delivered, refused, len(spool.waiting()), exc.message, sent)
        spool.mark(run.uid, "delivered_at", now, None)
        delivered += 1
        sent.append((run.uid, f"{run.client}/{run.job}", run.scheduled_for, run.finished_at,
                     len(run.steps), len(run.events)))
    return Delivery(delivered, refused, 0, None, sent)
