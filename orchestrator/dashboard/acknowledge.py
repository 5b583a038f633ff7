"""Acknowledging a run: "seen, I am on it", with a comment, by a staff account; audited. The
dashboard's form and ``hvbackup acknowledge`` both come here. An acknowledgement holds for the
job's whole outage (``problems.py``), so it is made once per outage, not once per failure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import UsageError
from orchestrator.history.models import (
    AcknowledgementRow,
    AuditRow,
    Role,
    RunRow,
    RunStatus,
    UserRow,
)
from orchestrator.history.queries import known_job


def acknowledge_run(sessions: sessionmaker[Session], uid: str, user_id: int | None,
                    comment: str, now: datetime, actor: str) -> None:
    """Record the acknowledgement of run ``uid`` and its audit line (one transaction)."""
    with sessions() as session, session.begin():
        run = session.scalars(select(RunRow).where(RunRow.uid == uid)).one()
        session.add(AcknowledgementRow(job_id=run.job_id, run_id=run.id, user_id=user_id,
                                       at=now, comment=comment))
        session.add(AuditRow(at=now, actor=actor, action="run.acknowledge", target=uid,
                             details={"comment": comment}))


def acknowledge_job(sessions: sessionmaker[Session], client: str, job: str,
                    user_id: int | None, comment: str, now: datetime, actor: str) -> None:
    """Record the acknowledgement of job ``client/job`` itself, late with no run to
    acknowledge (the scheduler is down): it holds until the job succeeds again."""
    with sessions() as session, session.begin():
        found = known_job(session, client, job)
        session.add(AcknowledgementRow(job_id=found.id, run_id=None, user_id=user_id,
                                       at=now, comment=comment))
        session.add(AuditRow(at=now, actor=actor, action="job.acknowledge",
                             target=f"{client}/{job}", details={"comment": comment}))


def staff_user(session: Session, username: str) -> UserRow:
    """The admin or hotline account ``username``; raises UsageError naming what is wrong."""
    user = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
    if user is None or user.disabled:
        raise UsageError(f"no active dashboard account {username!r} (hvbackup users list)")
    if user.role not in (Role.ADMIN, Role.HOTLINE):
        raise UsageError(f"{username!r} is a {user.role} account: only admin and hotline "
                         "accounts acknowledge")
    return user


def last_bad_run(session: Session, client: str, job: str) -> str:
    """The uid of the job's last finished run when it is not a REUSSIE; raises UsageError
    when the job is fine (nothing to acknowledge) or unknown."""
    found = known_job(session, client, job)
    run = session.scalars(select(RunRow).where(RunRow.job_id == found.id,
                                               RunRow.status.is_not(None))
                          .order_by(RunRow.scheduled_for.desc()).limit(1)).first()
    if run is None or run.status == RunStatus.REUSSIE.value:
        raise UsageError(f"{client}/{job}: its last run "
                         f"{'is REUSSIE' if run else 'does not exist'}: nothing to acknowledge")
    return run.uid
