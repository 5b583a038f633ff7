""""À traiter": what the hotline must look at first. Every job whose last run is not a clean
REUSSIE (ECHEC, NON EXECUTEE, AVERTISSEMENT, or flagged INHABITUELLE), and every open quota or
report alert; worst first, then the oldest. A client account sees only its own client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.history.models import (
    AcknowledgementRow,
    AlertRow,
    ClientRow,
    JobRow,
    RunRow,
    UserRow,
)

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
    longer: bool = False  # failing for longer than the runs looked at


    def last_success_age(self, now: datetime) -> timedelta | None:
        return now - self.last_success if self.last_success else None


def problems(sessions: sessionmaker[Session], *, client: str | None = None,
             history: int = 30) -> list[Problem]:
    """The problems, worst and oldest first; ``client`` limits to one client (portal).

    One statement finds every job's last finished run (an index seek per job on
    ``runs(job_id, scheduled_for)``); only the jobs in trouble have their recent runs read.
    """
    found: list[Problem] = []
    last_run = (select(RunRow.id).where(RunRow.job_id == JobRow.id, RunRow.status.is_not(None))
                .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow)
                .scalar_subquery())
    with sessions() as session:
        query = (select(JobRow, ClientRow.key, RunRow).join(ClientRow)
                 .join(RunRow, RunRow.id == last_run).where(JobRow.active.is_(True)))
        if client is not None:
            query = query.where(ClientRow.key == client)
        for job, owner, last in session.execute(query).all():
            status = last.status or "ECHEC"
            if status == "REUSSIE" and not last.sanity_flags:
                continue
            if status == "REUSSIE":
                status = "INHABITUELLE"
            runs = list(session.scalars(select(RunRow).where(
                RunRow.job_id == job.id, RunRow.status.is_not(None)).order_by(
                RunRow.scheduled_for.desc()).limit(history)))
            bad = _leading(runs, lambda r: r.status != "REUSSIE" or bool(r.sanity_flags))
            success = next((r.finished_at for r in runs if r.status == "REUSSIE"), None)
            message = last.error_message or "; ".join(
                f.get("reason", "") for f in last.sanity_flags or []) or status
            ack = session.execute(select(UserRow.username, AcknowledgementRow.comment)
                                  .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
                                  .where(AcknowledgementRow.run_id == last.id)
                                  .order_by(AcknowledgementRow.at.desc())).first()
            found.append(Problem(owner, job.key, status, bad[-1].scheduled_for, len(bad),
                                 success, message.splitlines()[0][:300], last.uid,
                                 ack[0] if ack else None, ack[1] if ack else None,
                                 [str(b) for b in job.copies or []], len(bad) >= history))
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


def _leading(runs: list[RunRow], bad: Callable[[RunRow], bool]) -> list[RunRow]:
    """The newest runs while they are bad (newest first)."""
    out = []
    for run in runs:
        if not bad(run):
            break
        out.append(run)
    return out
