""""À traiter": what the hotline must look at first. Every job whose last run is not a clean
REUSSIE (ECHEC, NON EXECUTEE, AVERTISSEMENT, or flagged INHABITUELLE), and every open quota or
report alert; worst first, then the oldest. A client account sees only its own client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.queries import aware
from orchestrator.history.models import (
    AcknowledgementRow,
    AlertRow,
    ClientRow,
    JobRow,
    RunRow,
    UserRow,
)

WINDOW = timedelta(days=62)  # runs read per job in trouble (two months of nights)
SEVERITY = {"ECHEC": 0, "NON EXECUTEE": 1, "quota": 2, "report": 2, "AVERTISSEMENT": 3,
            "INHABITUELLE": 4}


@dataclass
class Problem:
    client: str
    job: str | None
    status: str  # ECHEC | NON EXECUTEE | AVERTISSEMENT | INHABITUELLE | quota | report
    since: datetime  # when it started failing (first of the consecutive bad runs)
    failures: int  # consecutive bad runs
    last_success: datetime | None
    message: str
    run_uid: str | None
    acknowledged_by: str | None = None
    acknowledged_comment: str | None = None
    baies: list[str] = field(default_factory=list)  # the job's copies (filter by baie)

    def last_success_age(self, now: datetime) -> timedelta | None:
        return now - self.last_success if self.last_success else None


def problems(sessions: sessionmaker[Session], *, client: str | None = None) -> list[Problem]:
    """The problems, worst and oldest first; ``client`` limits to one client (portal).

    A handful of statements whatever the history's length: every job's last finished run (one
    index seek per job on ``runs(job_id, scheduled_for)``), then for the jobs in trouble only
    their runs of the last two months and the acknowledgements of their last run; a job failing
    for longer than that costs two more index seeks.
    """
    found: list[Problem] = []
    last_run = (select(RunRow.id).where(RunRow.job_id == JobRow.id, RunRow.status.is_not(None))
                .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow)
                .scalar_subquery())
    with sessions() as session:
        query = (select(JobRow.id, JobRow.key, JobRow.copies, ClientRow.key, RunRow.id,
                        RunRow.uid, RunRow.status, RunRow.sanity_flags, RunRow.error_message,
                        RunRow.scheduled_for)
                 .join(ClientRow, JobRow.client_id == ClientRow.id)
                 .join(RunRow, RunRow.id == last_run).where(JobRow.active.is_(True)))
        if client is not None:
            query = query.where(ClientRow.key == client)
        lasts = [row for row in session.execute(query).all() if _bad(row[6], row[7])]
        recent: dict[int, list[tuple[str, bool, datetime, datetime | None]]] = {}
        acks: dict[int | None, tuple[str | None, str]] = {}
        if lasts:
            since = min(row[9] for row in lasts) - WINDOW
            for job_id, status, flags, when, finished in session.execute(select(
                    RunRow.job_id, RunRow.status, RunRow.sanity_flags, RunRow.scheduled_for,
                    RunRow.finished_at).where(
                    RunRow.job_id.in_([row[0] for row in lasts]), RunRow.status.is_not(None),
                    RunRow.scheduled_for >= since).order_by(
                    RunRow.job_id, RunRow.scheduled_for.desc())):
                recent.setdefault(job_id, []).append((status, _bad(status, flags), when,
                                                      finished))
            for run_id, user, comment in session.execute(select(
                    AcknowledgementRow.run_id, UserRow.username, AcknowledgementRow.comment)
                    .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
                    .where(AcknowledgementRow.run_id.in_([row[4] for row in lasts]))
                    .order_by(AcknowledgementRow.at)):
                acks[run_id] = (user, comment)  # the latest one wins
        for job_id, job, copies, owner, run_id, uid, status, flags, error, _when in lasts:
            runs = recent.get(job_id, [])
            streak = list(takewhile(lambda r: r[1], runs))
            success = next((r[3] for r in runs if r[0] == "REUSSIE"), None)
            if len(streak) == len(runs):  # bad for the whole window: look further back
                failures, since_when, success = _streak_beyond(session, job_id)
            else:
                failures, since_when = len(streak), streak[-1][2]
            shown = "INHABITUELLE" if status == "REUSSIE" else status
            message = error or "; ".join(f.get("reason", "") for f in flags or []) or shown
            ack = acks.get(run_id)
            found.append(Problem(owner, job, shown, since_when, failures, success,
                                 message.splitlines()[0][:300], uid, ack[0] if ack else None,
                                 ack[1] if ack else None,
                                 [str(b) for b in copies or []]))
        alerts = select(AlertRow, ClientRow).join(ClientRow).where(
            AlertRow.resolved_at.is_(None),
            AlertRow.kind.in_(["quota_warning", "quota_blocked", "report_missing"]))
        if client is not None:
            alerts = alerts.where(ClientRow.key == client)
        for alert, client_row in session.execute(alerts).all():
            kind = "quota" if alert.kind.startswith("quota") else "report"
            baie = alert.details.get("baie") if isinstance(alert.details, dict) else None
            found.append(Problem(client_row.key, None, kind, alert.created_at, 1, None,
                                 alert.message, None, baies=[baie] if baie else []))
    return sorted(found, key=lambda p: (SEVERITY.get(p.status, 9), p.since, p.client))


def _bad(status: str | None, flags: list[Any] | None) -> bool:
    return status != "REUSSIE" or bool(flags)


def _streak_beyond(session: Session, job_id: int) -> tuple[int, datetime, datetime | None]:
    """Failing for longer than the window: (runs since the last REUSSIE, the first of them,
    when that REUSSIE ended)."""
    good = session.execute(select(RunRow.scheduled_for, RunRow.finished_at).where(
        RunRow.job_id == job_id, RunRow.status == "REUSSIE").order_by(
        RunRow.scheduled_for.desc()).limit(1)).first()
    after = [RunRow.job_id == job_id, RunRow.status.is_not(None)]
    if good is not None:
        after.append(RunRow.scheduled_for > good[0])
    count, first = session.execute(select(func.count(), func.min(RunRow.scheduled_for))
                                   .where(*after)).one()
    return int(count), aware(first) or datetime.now(UTC), None if good is None else good[1]
