"""The questions asked of the history, each with a name: the one place their SQL is written.

Every function takes an open ``Session`` (the caller owns the transaction) and returns rows or
plain values; none commits. Client and job are named by their configuration keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from orchestrator.errors import HvbError
from orchestrator.findings import SUCCEEDED
from orchestrator.history.models import (
    BaieUsageRow,
    ClientRow,
    EmailRow,
    JobRow,
    RunRequestRow,
    RunRow,
    SchedulerRow,
)


def client_row(session: Session, client: str) -> ClientRow | None:
    return session.scalars(select(ClientRow).where(ClientRow.key == client)).one_or_none()


def known_client(session: Session, client: str) -> ClientRow:
    """The client ``client``; raises HvbError (what to do) when the history does not know it."""
    row = client_row(session, client)
    if row is None:
        raise HvbError(f"client {client} is not in the history database: run "
                       "'hvbackup db upgrade -c FILE' after changing the configuration")
    return row


def job_row(session: Session, client: str, job: str) -> JobRow | None:
    """The job ``client/job``, None when the history does not know it."""
    return session.scalars(select(JobRow).join(ClientRow).where(
        ClientRow.key == client, JobRow.key == job)).one_or_none()


def known_job(session: Session, client: str, job: str) -> JobRow:
    """The job ``client/job``; raises HvbError (what to do) when the history does not know it."""
    row = job_row(session, client, job)
    if row is None:
        raise HvbError(f"job {client}/{job} is not in the history database: run "
                       "'hvbackup db upgrade -c FILE' after changing the configuration")
    return row


def run_by_uid(session: Session, uid: str) -> RunRow:
    return session.scalars(select(RunRow).where(RunRow.uid == uid)).one()


def run_at(session: Session, client: str, job: str, scheduled_for: datetime) -> RunRow | None:
    """The run of ``client/job`` scheduled at that instant, whatever its state."""
    return session.scalars(select(RunRow).join(JobRow).join(ClientRow).where(
        ClientRow.key == client, JobRow.key == job,
        RunRow.scheduled_for == scheduled_for)).first()


def jobs_expected_since(session: Session) -> dict[tuple[str, str], datetime]:
    """Since when each job's schedule is expected (its creation, or the last change of its
    schedule): nothing was due before."""
    rows = session.execute(select(ClientRow.key, JobRow.key, JobRow.expected_since)
                           .join(ClientRow)).all()
    return {(client, job): since for client, job, since in rows}


def last_scheduled_runs(session: Session, jobs: Iterable[tuple[str, str]]
                        ) -> dict[tuple[str, str], datetime]:
    """The latest scheduled run in the history (whatever its state or who ran it) of each of
    ``jobs`` (``(client, job)``): one index seek per job on ``runs(job_id, scheduled_for)``."""
    wanted = set(jobs)
    if not wanted:
        return {}
    last = (select(RunRow.scheduled_for).where(RunRow.job_id == JobRow.id,
                                               RunRow.trigger == "schedule")
            .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow).scalar_subquery())
    rows = session.execute(select(ClientRow.key, JobRow.key, last).join(ClientRow).where(
        ClientRow.key.in_({client for client, _job in wanted}))).all()
    return {(client, job): when for client, job, when in rows
            if when is not None and (client, job) in wanted}


def runs_scheduled_since(session: Session, since: datetime) -> set[tuple[str, str, datetime]]:
    """``(client, job, scheduled_for)`` of every run in the history scheduled after ``since``,
    whatever its state."""
    rows = session.execute(select(ClientRow.key, JobRow.key, RunRow.scheduled_for)
                           .join(JobRow, RunRow.job_id == JobRow.id).join(ClientRow)
                           .where(RunRow.scheduled_for > since)).all()
    return {(client, job, when) for client, job, when in rows}


def recent_figures(session: Session, client: str, job: str, *, before_uid: str,
                   limit: int) -> list[Any]:
    """The figures of the job's last ``limit`` runs that made a restore point, oldest first
    (``scheduled_for, bytes_read, files, bytes_new, duration_s``), run ``before_uid`` left out."""
    rows = session.execute(
        select(RunRow.scheduled_for, RunRow.bytes_read, RunRow.files, RunRow.bytes_new,
               RunRow.duration_s).join(JobRow).join(ClientRow)
        .where(ClientRow.key == client, JobRow.key == job, RunRow.status.in_(SUCCEEDED),
               RunRow.uid != before_uid, RunRow.bytes_read.is_not(None))
        .order_by(RunRow.scheduled_for.desc()).limit(limit)).all()
    return list(reversed(rows))


def last_successes(session: Session, job_id: int, before: datetime, limit: int) -> list[RunRow]:
    """The job's last ``limit`` runs that made a restore point, scheduled before ``before``,
    newest first."""
    return list(session.scalars(select(RunRow).where(
        RunRow.job_id == job_id, RunRow.scheduled_for < before, RunRow.status.in_(SUCCEEDED))
        .order_by(RunRow.scheduled_for.desc()).limit(limit)))


def runs_between(session: Session, job_id: int, start: datetime, end: datetime) -> list[RunRow]:
    """The job's runs scheduled in ``[start, end)``, oldest first."""
    return list(session.scalars(select(RunRow).where(
        RunRow.job_id == job_id, RunRow.scheduled_for >= start,
        RunRow.scheduled_for < end).order_by(RunRow.scheduled_for)))


def pending_requests(session: Session) -> list[tuple[int, str, str, str]]:
    """"Run now" requests not yet started: ``(id, client, job, requested_by)``, oldest first."""
    rows = session.execute(
        select(RunRequestRow.id, ClientRow.key, JobRow.key, RunRequestRow.requested_by)
        .join(JobRow, RunRequestRow.job_id == JobRow.id).join(ClientRow)
        .where(RunRequestRow.started_at.is_(None)).order_by(RunRequestRow.id)).all()
    return [(i, c, j, w) for i, c, j, w in rows]


def usage_points(session: Session, client: str) -> dict[str, list[tuple[datetime, int]]]:
    """What the client's repositories took on each baie, as measured after runs, oldest first."""
    rows = session.execute(select(BaieUsageRow.baie, BaieUsageRow.measured_at,
                                  BaieUsageRow.bytes_stored).join(ClientRow)
                           .where(ClientRow.key == client)
                           .order_by(BaieUsageRow.measured_at)).all()
    by_baie: dict[str, list[tuple[datetime, int]]] = {}
    for baie, when, value in rows:
        by_baie.setdefault(baie, []).append((when, value))
    return by_baie


def offboard_date(session: Session, client: str) -> Any:
    """The client's contract end date, None when none is set."""
    return session.scalars(select(ClientRow.offboard_on).where(ClientRow.key == client)).first()


def report_made(session: Session, kind: str, client: str | None, report_date: date) -> bool:
    """Whether a report of ``kind`` (digest, summary) for ``report_date`` was built already,
    whether it went out or stayed in the outbox: a restarted scheduler does not send it twice."""
    query = select(EmailRow.id).where(EmailRow.kind == kind, EmailRow.report_date == report_date)
    if client is None:
        query = query.where(EmailRow.client_id.is_(None))
    else:
        query = query.join(ClientRow, EmailRow.client_id == ClientRow.id).where(
            ClientRow.key == client)
    return session.scalars(query).first() is not None


def had_jobs(session: Session, client: str, before: datetime) -> bool:
    """Whether any job of ``client`` was in the history before ``before`` (else nothing was
    expected of it then, and there is nothing to report)."""
    return session.scalars(select(JobRow.id).join(ClientRow).where(
        ClientRow.key == client, JobRow.created_at < before)).first() is not None


def night_expected(session: Session, client: str, start: datetime, end: datetime) -> bool:
    """Whether ``client`` owes a report for the night ``[start, end)``: one of its jobs existed
    when it began (and its contract had not ended: nothing is expected after its end date),
    or one ran (or was recorded NON EXECUTEE) during it."""
    ended = offboard_date(session, client)
    if had_jobs(session, client, start) and (ended is None or ended > start.date()):
        return True
    return session.scalars(select(RunRow.id).join(JobRow).join(ClientRow).where(
        ClientRow.key == client, RunRow.scheduled_for >= start,
        RunRow.scheduled_for < end)).first() is not None


def schedules_and_last_runs(session: Session, client: str | None = None, *,
                            late_by: Mapping[tuple[str, float], datetime] | None = None
                            ) -> list[Any]:
    """Every active job of a client not destroyed, with what its lateness is judged from:
    ``(job_id, client, job, schedule, window_hours, expected_since, last_scheduled,
    offboard_on)``; ``last_scheduled`` is its latest run's ``scheduled_for`` whatever the run's
    state (one index seek per job on ``runs(job_id, scheduled_for)``), None when it never ran.

    ``late_by`` (``schedule.late.due_edges``) keeps only the jobs that may be late: for each
    ``(schedule, window_hours)``, those expected before its last instant whose window has
    passed and with no run from that instant on. The others cannot be late, and a server of
    thousands of jobs has only a few late ones to work out."""
    last = (select(RunRow.scheduled_for).where(RunRow.job_id == JobRow.id)
            .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow).scalar_subquery())
    query = (select(JobRow.id, ClientRow.key, JobRow.key, JobRow.schedule, JobRow.window_hours,
                    JobRow.expected_since, last.label("last"), ClientRow.offboard_on)
             .join(ClientRow, JobRow.client_id == ClientRow.id)
             .where(JobRow.active.is_(True), ClientRow.active.is_(True),
                    ClientRow.destroyed_at.is_(None)).order_by(ClientRow.key, JobRow.key))
    if client is not None:
        query = query.where(ClientRow.key == client)
    if late_by is not None:
        if not late_by:
            return []
        query = query.where(or_(*(
            and_(JobRow.schedule == text, JobRow.window_hours == window,
                 JobRow.expected_since <= edge,
                 ~select(RunRow.id).where(RunRow.job_id == JobRow.id,
                                          RunRow.scheduled_for >= edge)
                 .correlate(JobRow).exists())
            for (text, window), edge in late_by.items())))
    return list(session.execute(query).all())


def schedule_kinds(session: Session) -> list[tuple[str, float]]:
    """The ``(schedule, window_hours)`` pairs of the active jobs, each once."""
    return [(text, window) for text, window in session.execute(
        select(JobRow.schedule, JobRow.window_hours).where(JobRow.active.is_(True))
        .distinct()).all()]


def scheduler_last_seen(session: Session) -> datetime | None:
    """When the leading scheduler (the one that plans) last finished a cycle, None when none
    ever led: followers alone plan nothing."""
    leader = scheduler_leader(session)
    return leader.seen_at if leader is not None else None


def scheduler_leader(session: Session) -> SchedulerRow | None:
    """The scheduler that leads (the latest seen of those marked leading), None when none."""
    return session.scalars(select(SchedulerRow).where(SchedulerRow.leading_since.is_not(None))
                           .order_by(SchedulerRow.seen_at.desc()).limit(1)).first()


def schedulers(session: Session) -> list[SchedulerRow]:
    """Every scheduler ever seen, the latest seen first."""
    return list(session.scalars(select(SchedulerRow).order_by(SchedulerRow.seen_at.desc())))
