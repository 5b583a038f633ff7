"""Contract end: backups stop on the chosen date; 30 days later the client's data is destroyed
on every baie, and the audit log says who asked, when, and what went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.open import open_target
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError
from orchestrator.history.models import AuditRow, ClientRow
from orchestrator.history.queries import client_row, offboard_date

DESTROY_AFTER = timedelta(days=30)


@dataclass
class Destruction:
    client: str
    baie: str
    files: int
    bytes: int


def schedule_offboard(sessions: sessionmaker[Session], client: str, on: date, actor: str,
                      now: datetime) -> date:
    """Record the contract end; returns the date the data will be destroyed."""
    with sessions() as session, session.begin():
        row = client_row(session, client)
        if row is None:
            raise UsageError(f"client {client} is not in the history: run 'hvbackup db upgrade'")
        if row.destroyed_at is not None:
            raise UsageError(f"client {client}'s data was destroyed on {row.destroyed_at:%d/%m/%Y}")
        row.offboard_on = on
        session.add(AuditRow(at=now, actor=actor, action="client.offboard", target=client,
                             details={"backups_stop": on.isoformat(),
                                      "destroy_on": (on + DESTROY_AFTER).isoformat()}))
    return on + DESTROY_AFTER


def offboarded(sessions: sessionmaker[Session], client: str, today: date) -> date | None:
    """The contract end date when it has come, else None."""
    with sessions() as session:
        on = offboard_date(session, client)
    return on if on is not None and on <= today else None


def inventory(loaded: LoadedConfig, client: str) -> list[Destruction]:
    """What the client has on each of its baies."""
    settings = loaded.config.clients[client]
    baies: list[str] = list(settings.copies or [])
    for job in settings.jobs.values():
        baies += [b for b in (job.copies or []) if b not in baies]
    out = []
    for baie in baies:
        target = open_target(loaded.baie(baie, client))
        try:
            entries = list(target.list(""))
        finally:
            target.close()
        out.append(Destruction(client, baie, len(entries), sum(e.size for e in entries)))
    return out


def destroy_due(loaded: LoadedConfig, sessions: sessionmaker[Session], now: datetime, actor: str,
                *, dry_run: bool = False) -> list[Destruction]:
    """Destroy the data of every client whose contract ended 30 days ago or more."""
    today = now.astimezone(loaded.config.msp.timezone).date()
    with sessions() as session:
        due = [row.key for row in session.scalars(select(ClientRow).where(
            ClientRow.offboard_on.is_not(None), ClientRow.destroyed_at.is_(None)))
               if row.offboard_on is not None and row.offboard_on + DESTROY_AFTER <= today]
    done: list[Destruction] = []
    for client in due:
        if client not in loaded.config.clients:
            continue  # no baie settings left to reach its data: the audit log keeps the date
        found = inventory(loaded, client)
        if not dry_run:
            for item in found:
                target = open_target(loaded.baie(item.baie, client))
                try:
                    for entry in list(target.list("")):
                        target.delete(entry.name)
                finally:
                    target.close()
            with sessions() as session, session.begin():
                row = client_row(session, client)
                assert row is not None
                row.destroyed_at = now
                row.active = False
                session.add(AuditRow(at=now, actor=actor, action="client.destroy", target=client,
                                     details={d.baie: {"files": d.files, "bytes": d.bytes}
                                              for d in found}))
        done += found
    return done
