"""Contract end: backups stop on the chosen date; 30 days later the client's data is destroyed
on every baie, and the audit log says who asked, when, and what went.

The 30 days count from the later of the end date and the day the offboarding was recorded
(``client.offboard`` in the audit log, which is never deleted): whatever the date given, the
MSP always has 30 days to notice a mistake. A date in the past is refused. The hotline's
morning summary announces each destruction every day of the last ``ANNOUNCE`` days before it,
and on the day itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.open import open_target
from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import Client
from orchestrator.errors import UsageError
from orchestrator.history.models import AuditRow, ClientRow
from orchestrator.history.queries import client_row, offboard_date

DESTROY_AFTER = timedelta(days=30)
ANNOUNCE = 7  # days before the destruction from which the hotline summary announces it


@dataclass
class Destruction:
    client: str
    baie: str
    files: int
    bytes: int


@dataclass
class Upcoming:
    """A destruction the hotline is told about before it happens."""

    client: str
    name: str
    stopped_on: date  # backups stopped (or stop) that day
    destroy_on: date
    days_left: int  # 0: today, at the daily maintenance
    baies: list[str]


def schedule_offboard(sessions: sessionmaker[Session], client: str, on: date, actor: str,
                      now: datetime, tz: tzinfo = UTC) -> date:
    """Record the contract end; returns the date the data will be destroyed: 30 days after
    ``on``, which may not be before today (``now`` in ``tz``, the MSP's zone). Raises
    UsageError for a date in the past, an unknown or already destroyed client."""
    today = now.astimezone(tz).date()
    if on < today:
        raise UsageError(f"--on {on.isoformat()} is in the past (today is {today.isoformat()}): "
                         "backups stop on a day to come, and the data is destroyed 30 days "
                         f"after it; to stop them today, give --on {today.isoformat()}")
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


def destruction_date(session: Session, row: ClientRow, tz: tzinfo) -> date | None:
    """When ``row``'s data is destroyed: 30 days after the later of its end date and the day
    (in ``tz``) its offboarding was last recorded; None without an end date."""
    if row.offboard_on is None:
        return None
    recorded = session.scalars(select(AuditRow.at).where(
        AuditRow.action == "client.offboard", AuditRow.target == row.key)
        .order_by(AuditRow.at.desc(), AuditRow.id.desc())).first()
    start = row.offboard_on
    if recorded is not None:
        at = recorded if recorded.tzinfo is not None else recorded.replace(tzinfo=UTC)
        start = max(start, at.astimezone(tz).date())
    return start + DESTROY_AFTER


def destructions_ahead(loaded: LoadedConfig, sessions: sessionmaker[Session], now: datetime,
                       within: int = ANNOUNCE) -> list[Upcoming]:
    """Destructions due today or in the next ``within`` days, soonest first."""
    tz = loaded.config.msp.timezone
    today = now.astimezone(tz).date()
    out = []
    with sessions() as session:
        for row in session.scalars(select(ClientRow).where(
                ClientRow.offboard_on.is_not(None), ClientRow.destroyed_at.is_(None))):
            settings = loaded.config.clients.get(row.key)
            when = destruction_date(session, row, tz)
            if settings is None or when is None or row.offboard_on is None:
                continue  # not in the configuration: destroy_due cannot reach it either
            left = (when - today).days
            if 0 <= left <= within:
                out.append(Upcoming(row.key, settings.name, row.offboard_on, when, left,
                                    baies_of(settings)))
    return sorted(out, key=lambda u: (u.destroy_on, u.client))


def offboarded(sessions: sessionmaker[Session], client: str, today: date) -> date | None:
    """The contract end date when it has come, else None."""
    with sessions() as session:
        on = offboard_date(session, client)
    return on if on is not None and on <= today else None


def baies_of(settings: Client) -> list[str]:
    baies: list[str] = list(settings.copies or [])
    for job in settings.jobs.values():
        baies += [b for b in (job.copies or []) if b not in baies]
    return baies


def inventory(loaded: LoadedConfig, client: str) -> list[Destruction]:
    """What the client has on each of its baies."""
    out = []
    for baie in baies_of(loaded.config.clients[client]):
        target = open_target(loaded.baie(baie, client))
        try:
            entries = list(target.list(""))
        finally:
            target.close()
        out.append(Destruction(client, baie, len(entries), sum(e.size for e in entries)))
    return out


def destroy_due(loaded: LoadedConfig, sessions: sessionmaker[Session], now: datetime, actor: str,
                *, dry_run: bool = False) -> list[Destruction]:
    """Destroy the data of every client whose destruction date (:func:`destruction_date`) has
    come."""
    tz = loaded.config.msp.timezone
    today = now.astimezone(tz).date()
    with sessions() as session:
        due = []
        for candidate in session.scalars(select(ClientRow).where(
                ClientRow.offboard_on.is_not(None), ClientRow.destroyed_at.is_(None))):
            when = destruction_date(session, candidate, tz)
            if when is not None and when <= today:
                due.append(candidate.key)
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
