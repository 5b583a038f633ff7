"""What the dashboard pages and the API read from the history, one function per page.

Every function takes the client it is about by key; scoping (who may ask) is the caller's.
They read at most a month of runs per job and use the indexes on ``runs(job_id,
scheduled_for)``, ``snapshots(job_id, taken_at)`` and ``baie_usage(client_id, baie,
measured_at)``, so a page costs the same after three years as after three days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.statuses import FAILING, WORST, shown
from orchestrator.history.models import (
    AcknowledgementRow,
    BaieUsageRow,
    ClientRow,
    JobRow,
    RunEventRow,
    RunRequestRow,
    RunRow,
    RunStatus,
    RunStepRow,
    SnapshotRow,
    UserRow,
)
from orchestrator.history.queries import (
    client_row,
    job_row,
    schedule_kinds,
    schedules_and_last_runs,
)
from orchestrator.jobs.quota import QuotaState, TierMove, state_of, tier_moves
from orchestrator.schedule.late import ON_TIME, Lateness, due_edges, lateness, of_jobs
from orchestrator.schedule.spec import parse_schedule

STRIP_DAYS = 30
USAGE_DAYS = 120  # enough to judge the quota: the grace period is 30 days


class NotFound(LookupError):
    """No such client, job or run (or not one this viewer may see: same answer). The message
    is the API's 404 detail: ``no client 'acme'``."""


@dataclass
class Day:
    day: date
    status: str | None  # None: no run that day
    run_uid: str | None = None
    bytes_read: int | None = None
    unusual: bool = False
    missed: bool = False  # no run, and a scheduled one's window passed (schedule/late.py)

    @property
    def shown(self) -> str | None:
        """The status the day's cell is coloured by (INHABITUELLE for flagged figures)."""
        return shown(self.status, self.unusual)


@dataclass
class Points:
    count: int
    oldest: datetime | None
    newest: datetime | None


@dataclass
class JobLine:
    key: str
    type: str
    host: str
    schedule: str
    copies: list[str]
    strip: list[Day]
    last: RunRow | None
    points: dict[str, Points] = field(default_factory=dict)
    # The last copy to the other baies: identical | different | unknown (none in 30 days) |
    # single (the job has one copy only).
    parity: str = "single"
    pending_request: bool = False
    late: Lateness = ON_TIME  # scheduled runs with no run in the history (schedule/late.py)


@dataclass
class ClientPage:
    key: str
    name: str
    language: str
    jobs: list[JobLine]
    quota: QuotaState
    usage: dict[str, list[tuple[datetime, int]]]  # baie -> measurements, oldest first
    tier_moves: list[TierMove] = field(default_factory=list)  # subscribed volume moved up


@dataclass
class ClientSummary:
    key: str
    name: str
    jobs: int
    worst: str | None  # worst last status over the client's jobs
    failing: int  # jobs whose last run failed or did not run, or that are late
    last_run: datetime | None
    late: int = 0  # jobs late (a scheduled run with no run in the history)


@dataclass
class RunPage:
    client: str
    client_name: str
    job: str
    job_type: str
    run: RunRow
    steps: list[RunStepRow]
    events: list[RunEventRow]
    acknowledgements: list[tuple[str | None, datetime, str]]


def last_run_subquery() -> Any:
    """Each job's last finished run (correlated to ``JobRow``): one index seek per job."""
    return (select(RunRow.id).where(RunRow.job_id == JobRow.id, RunRow.status.is_not(None))
            .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow)
            .scalar_subquery())


def clients(sessions: sessionmaker[Session], *, tz: ZoneInfo, now: datetime,
            only: str | None = None) -> list[ClientSummary]:
    """Every client with the worst last status of its jobs (or just ``only``); a late job
    counts as NON EXECUTEE (schedule/late.py)."""
    with sessions() as session:
        query = select(ClientRow).where(ClientRow.destroyed_at.is_(None)).order_by(ClientRow.key)
        if only is not None:
            query = query.where(ClientRow.key == only)
        rows = {c.id: ClientSummary(c.key, c.name, 0, None, 0, None)
                for c in session.scalars(query)}
        lasts = session.execute(select(JobRow.client_id, RunRow.status, RunRow.scheduled_for,
                                       JobRow.id)
                                .outerjoin(RunRow, RunRow.id == last_run_subquery())
                                .where(JobRow.active.is_(True))).all()
        late = of_jobs(schedules_and_last_runs(
            session, only, late_by=due_edges(schedule_kinds(session), tz, now)), tz, now)
    for client_id, status, when, job_id in lasts:
        summary = rows.get(client_id)
        if summary is None:
            continue
        summary.jobs += 1
        if late.get(job_id, ON_TIME).late:
            summary.late += 1
            if status not in FAILING:
                status = RunStatus.NON_EXECUTEE.value
        if status is None:
            continue
        if summary.worst is None or WORST.get(status, 0) < WORST.get(summary.worst, 0):
            summary.worst = status
        summary.failing += status in FAILING
        if when is not None:
            summary.last_run = max(summary.last_run or when, when)
    return list(rows.values())


def client_page(sessions: sessionmaker[Session], client: str, tz: ZoneInfo,
                now: datetime) -> ClientPage:
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=STRIP_DAYS - 1)
    since = datetime.combine(first_day, datetime.min.time(), tz) - timedelta(days=1)
    with sessions() as session:
        owner = client_row(session, client)
        if owner is None:
            raise NotFound(f"no client {client!r}")
        jobs = list(session.scalars(select(JobRow).where(
            JobRow.client_id == owner.id, JobRow.active.is_(True)).order_by(JobRow.key)))
        ids = [j.id for j in jobs]
        runs = list(session.scalars(select(RunRow).where(
            RunRow.job_id.in_(ids), RunRow.scheduled_for >= since,
            RunRow.status.is_not(None)).order_by(RunRow.scheduled_for)))
        job_of_run = {r.id: r.job_id for r in runs}
        copy_steps = session.execute(select(RunStepRow.run_id, RunStepRow.details).where(
            RunStepRow.run_id.in_(list(job_of_run)), RunStepRow.name == "copy",
            RunStepRow.status == "ok").order_by(RunStepRow.id)).all()
        parity: dict[int, dict[str, Any]] = {}  # job -> its latest copy step that ran
        for run_id, details in copy_steps:
            parity[job_of_run[run_id]] = details
        points = session.execute(select(
            SnapshotRow.job_id, SnapshotRow.baie, func.count(), func.min(SnapshotRow.taken_at),
            func.max(SnapshotRow.taken_at)).where(
            SnapshotRow.job_id.in_(ids), SnapshotRow.forgotten_at.is_(None)).group_by(
            SnapshotRow.job_id, SnapshotRow.baie)).all()
        pending = set(session.scalars(select(RunRequestRow.job_id).where(
            RunRequestRow.job_id.in_(ids), RunRequestRow.started_at.is_(None))))
        late = of_jobs(schedules_and_last_runs(session, client), tz, now)
        usage_rows = session.execute(select(
            BaieUsageRow.baie, BaieUsageRow.measured_at, BaieUsageRow.bytes_stored).where(
            BaieUsageRow.client_id == owner.id,
            BaieUsageRow.measured_at >= now - timedelta(days=USAGE_DAYS)).order_by(
            BaieUsageRow.measured_at)).all()
        usage: dict[str, list[tuple[datetime, int]]] = {}
        for baie, when, value in usage_rows:
            usage.setdefault(baie, []).append((when, value))
        quota = state_of(session, client, owner.quota_bytes, owner.quota_on_overrun, now, usage)
        moves = tier_moves(session, client)
        session.expunge_all()
    by_job: dict[int, list[RunRow]] = {}
    for run in runs:
        by_job.setdefault(run.job_id, []).append(run)
    lines = []
    for job in jobs:
        mine = by_job.get(job.id, [])
        copies = [str(c) for c in job.copies or []]
        details = parity.get(job.id)
        state = "single" if len(copies) < 2 else "unknown" if details is None else \
            "identical" if details.get("parity") else "different"
        strip = _strip(mine, first_day, tz)
        if owner.offboard_on is None or owner.offboard_on > today:
            _mark_missed(strip, job, mine, late.get(job.id, ON_TIME), tz, now)
        line = JobLine(job.key, job.type, job.host, job.schedule, copies,
                       strip, mine[-1] if mine else None,
                       parity=state, pending_request=job.id in pending,
                       late=late.get(job.id, ON_TIME))
        lines.append(line)
    by_id = {j.id: line for j, line in zip(jobs, lines, strict=True)}
    for job_id, baie, count, oldest, newest in points:
        by_id[job_id].points[baie] = Points(count, aware(oldest), aware(newest))
    return ClientPage(owner.key, owner.name, owner.language, lines, quota, usage, moves)


def aware(value: datetime | str | None) -> datetime | None:
    """Aggregates (min/max) bypass the column type: SQLite gives naive UTC, or even text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _strip(runs: list[RunRow], first_day: date, tz: ZoneInfo) -> list[Day]:
    """One cell per day, oldest first: the last run of the day decides its colour."""
    days = {first_day + timedelta(days=i): Day(first_day + timedelta(days=i), None)
            for i in range(STRIP_DAYS)}
    for run in runs:  # oldest first: the day's last run wins
        cell = days.get(run.scheduled_for.astimezone(tz).date())
        if cell is not None:
            cell.status, cell.run_uid, cell.bytes_read = run.status, run.uid, run.bytes_read
            cell.unusual = bool(run.sanity_flags)
    return list(days.values())


def _mark_missed(strip: list[Day], job: JobRow, runs: list[RunRow], late: Lateness,
                 tz: ZoneInfo, now: datetime) -> None:
    """Mark the days of ``strip`` with no run but a scheduled one missed: between two of its
    finished ``runs``, and since the last run (``late``: the scheduler down records
    nothing)."""
    schedule = parse_schedule(job.schedule)
    window = timedelta(hours=job.window_hours)
    expected = max(aware(job.expected_since) or now,
                   datetime.combine(strip[0].day, datetime.min.time(), tz))
    days = {d.day: d for d in strip}
    missed = list(late.missed)
    previous: datetime | None = None
    for run in runs:
        missed += lateness(schedule, window, tz, last_run=previous, expected_since=expected,
                           now=now, until=run.scheduled_for).missed
        previous = run.scheduled_for
    for instant in missed:
        cell = days.get(instant.astimezone(tz).date())
        if cell is not None and cell.status is None:
            cell.missed = True


def job_runs(sessions: sessionmaker[Session], client: str, job: str, limit: int,
             before: datetime | None = None) -> list[RunRow]:
    """The job's runs, newest first."""
    with sessions() as session:
        found = job_row(session, client, job)
        if found is None:
            raise NotFound(f"no job {client}/{job}")
        job_id = found.id
        query = select(RunRow).where(RunRow.job_id == job_id)
        if before is not None:
            query = query.where(RunRow.scheduled_for < before)
        rows = list(session.scalars(query.order_by(RunRow.scheduled_for.desc()).limit(limit)))
        session.expunge_all()
    return rows


def run_page(sessions: sessionmaker[Session], uid: str) -> RunPage:
    with sessions() as session:
        found = session.execute(select(RunRow, JobRow, ClientRow).join(
            JobRow, RunRow.job_id == JobRow.id).join(ClientRow).where(RunRow.uid == uid)).first()
        if found is None:
            raise NotFound(f"no run {uid!r}")
        run, job, owner = found
        steps = list(session.scalars(select(RunStepRow).where(RunStepRow.run_id == run.id)
                                     .order_by(RunStepRow.seq)))
        events = list(session.scalars(select(RunEventRow).where(RunEventRow.run_id == run.id)
                                      .order_by(RunEventRow.id)))
        acks: list[tuple[str | None, datetime, str]] = [(u, at, c) for u, at, c in session.execute(
            select(UserRow.username, AcknowledgementRow.at, AcknowledgementRow.comment)
            .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
            .where(AcknowledgementRow.run_id == run.id).order_by(AcknowledgementRow.at))]
        session.expunge_all()
    return RunPage(owner.key, owner.name, job.key, job.type, run, steps, events, acks)


def client_of_run(sessions: sessionmaker[Session], uid: str) -> str | None:
    with sessions() as session:
        return session.scalars(select(ClientRow.key).join(JobRow).join(
            RunRow, RunRow.job_id == JobRow.id).where(RunRow.uid == uid)).first()

