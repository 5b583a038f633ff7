""""À traiter": what the hotline must look at first. Every job whose last run is not a clean
REUSSIE (ECHEC, NON EXECUTEE, AVERTISSEMENT, or flagged INHABITUELLE), every job that is late
(a scheduled run whose window passed with no run in the history: the scheduler was down and
recorded nothing), and every open quota or report alert; worst first, then the oldest. A client
account sees only its own client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.queries import aware, last_run_subquery
from orchestrator.dashboard.statuses import AGENT, QUOTA, REPORT, SEVERITY, UNUSUAL
from orchestrator.findings import AlertKind
from orchestrator.history.models import (
    AcknowledgementRow,
    AlertRow,
    ClientRow,
    JobRow,
    RunRow,
    RunStatus,
    UserRow,
)
from orchestrator.history.queries import (
    schedule_kinds,
    scheduler_last_seen,
    schedules_and_last_runs,
)
from orchestrator.schedule.late import due_edges, of_jobs, scheduler_late

MISSED = "HVB-RUN-MISSED"  # the code of a scheduled run that did not happen
WINDOW = timedelta(days=10)  # runs read at once per job in trouble; longer streaks cost 2 seeks


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
    alert_id: int | None = None  # quota and report problems are alerts, acknowledged as such
    acknowledged_at: datetime | None = None
    # Late: the first scheduled run that has no run in the history, and how many are missing.
    late_since: datetime | None = None
    missed_runs: int = 0
    host: str | None = None  # the job's host (a run's problem)
    error_code: str | None = None  # its last run's HVB-... code
    job_id: int | None = None
    client_name: str = ""  # the client's name, as people call it (``client`` is its key)
    # Late with no run to show, while no scheduler runs: the cause of every such job.
    scheduler_down: bool = False

    @property
    def name(self) -> str:
        return self.client_name or self.client

    @property
    def cause(self) -> tuple[str, str, str] | None:
        """What problems with one cause share: the same host failing with the same code; for
        jobs late with no run, the stopped scheduler (every client's), else their host."""
        if self.host and self.error_code and self.run_uid:
            return (self.client, self.host, self.error_code)
        if self.job and self.run_uid is None and self.late_since is not None:
            if self.scheduler_down:
                return ("", "", MISSED)
            return (self.client, self.host or "", MISSED)
        return None

    def last_success_age(self, now: datetime) -> timedelta | None:
        return now - self.last_success if self.last_success else None


def problems(sessions: sessionmaker[Session], *, tz: ZoneInfo, now: datetime,
             client: str | None = None) -> list[Problem]:
    """The problems at ``now``, worst and oldest first; ``client`` limits to one client
    (portal). Lateness is judged on the schedules in ``tz`` (``schedule/late.py``).

    A handful of statements whatever the history's length: every job's last finished run (one
    index seek per job on ``runs(job_id, scheduled_for)``), then for the jobs in trouble only
    their runs of the last ten days and the acknowledgements of their last run; a job failing
    for longer than that are counted further back by two more statements for them all.
    """
    found: list[Problem] = []
    last_run = last_run_subquery()
    with sessions() as session:
        query = (select(JobRow.id, JobRow.key, JobRow.copies, ClientRow.key, RunRow.id,
                        RunRow.uid, RunRow.status, RunRow.sanity_flags, RunRow.error_message,
                        RunRow.scheduled_for, JobRow.host, RunRow.error_code)
                 .join(ClientRow, JobRow.client_id == ClientRow.id)
                 .join(RunRow, RunRow.id == last_run)
                 .where(JobRow.active.is_(True), _bad_in_sql()))
        if client is not None:
            query = query.where(ClientRow.key == client)
        lasts = session.execute(query).all()
        recent: dict[int, list[tuple[str | None, bool, datetime, datetime | None]]] = {}
        since = min(row[9] for row in lasts) - WINDOW if lasts else None
        if lasts:
            for job_id, status, is_bad, when, finished in session.execute(select(
                    RunRow.job_id, RunRow.status, _bad_in_sql(), RunRow.scheduled_for,
                    RunRow.finished_at).where(
                    RunRow.job_id.in_([row[0] for row in lasts]), RunRow.status.is_not(None),
                    RunRow.scheduled_for >= since).order_by(
                    RunRow.job_id, RunRow.scheduled_for.desc())):
                recent.setdefault(job_id, []).append((status, bool(is_bad), when, finished))
        # Bad for the whole window read, and runs before it: the streak is counted further
        # back.
        beyond = _streaks_beyond(session, _older_runs(session, [row[0] for row in lasts if all(
            r[1] for r in recent.get(row[0], []))], since))
        streaks: dict[int, tuple[int, datetime, datetime | None]] = {}
        for job_id, *_rest in lasts:
            runs = recent.get(job_id, [])
            streak = list(takewhile(lambda r: r[1], runs))
            success = next((r[3] for r in runs if r[0] == RunStatus.REUSSIE), None)
            streaks[job_id] = beyond.get(job_id) or (len(streak), streak[-1][2], success)
        acks = _streak_acknowledgements(session, {job: s[1] for job, s in streaks.items()})
        for (job_id, job, copies, owner, _run_id, uid, status, flags, error, _when, host,
             code) in lasts:
            failures, since_when, success = streaks[job_id]
            # Not a clean REUSSIE: a REUSSIE last run here is one with flagged figures.
            shown = UNUSUAL if status == RunStatus.REUSSIE else status
            message = error or "; ".join(f.get("reason", "") for f in flags or []) or shown
            ack = acks.get(job_id)
            found.append(Problem(owner, job, shown, since_when, failures, success,
                                 message.splitlines()[0][:300], uid, ack[0] if ack else None,
                                 ack[1] if ack else None,
                                 [str(b) for b in copies or []],
                                 acknowledged_at=ack[2] if ack else None, host=host,
                                 error_code=code, job_id=job_id))
        found += _late(session, found, tz, now, client)
        _job_acknowledgements(session, found)
        alerts = select(AlertRow, ClientRow).join(ClientRow).where(
            AlertRow.resolved_at.is_(None),
            AlertRow.kind.in_([AlertKind.QUOTA_WARNING.value, AlertKind.QUOTA_BLOCKED.value,
                               AlertKind.QUOTA_TIER.value,
                               AlertKind.REPORT_MISSING.value]))
        if client is not None:
            alerts = alerts.where(ClientRow.key == client)
        open_alerts = session.execute(alerts).all()
        alert_acks: dict[int | None, tuple[str | None, str, datetime]] = {}
        if open_alerts:
            for alert_id, user, comment, at in session.execute(select(
                    AcknowledgementRow.alert_id, UserRow.username, AcknowledgementRow.comment,
                    AcknowledgementRow.at)
                    .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
                    .where(AcknowledgementRow.alert_id.in_([a.id for a, _c in open_alerts]))
                    .order_by(AcknowledgementRow.at)):
                alert_acks[alert_id] = (user, comment, at)  # the latest one wins
        for alert, client_row in open_alerts:
            kind = QUOTA if AlertKind(alert.kind).is_quota else REPORT
            baie = alert.details.get("baie") if isinstance(alert.details, dict) else None
            alert_ack = alert_acks.get(alert.id)
            found.append(Problem(client_row.key, None, kind, alert.created_at, 1, None,
                                 alert.message, None, alert_ack[0] if alert_ack else None,
                                 alert_ack[1] if alert_ack else None,
                                 baies=[baie] if baie else [], alert_id=alert.id,
                                 acknowledged_at=alert_ack[2] if alert_ack else None))
        if client is None:  # the hotline's: a client's portal does not show the agents
            found += _silent_agents(session)
        names = dict(session.execute(select(ClientRow.key, ClientRow.name).where(
            ClientRow.key.in_({p.client for p in found}))).all()) if found else {}
    for problem in found:
        problem.client_name = names.get(problem.client, problem.client)
    return sorted(found, key=lambda p: (SEVERITY.get(p.status, 9), p.since, p.client))


def _silent_agents(session: Session) -> list[Problem]:
    """An open "agent injoignable" alert, on the row of each client of its site."""
    out = []
    for alert in session.scalars(select(AlertRow).where(
            AlertRow.kind == AlertKind.AGENT_SILENT.value, AlertRow.resolved_at.is_(None))):
        details = alert.details if isinstance(alert.details, dict) else {}
        ack = session.execute(select(UserRow.username, AcknowledgementRow.comment,
                                     AcknowledgementRow.at)
                              .select_from(AcknowledgementRow)
                              .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
                              .where(AcknowledgementRow.alert_id == alert.id)
                              .order_by(AcknowledgementRow.at.desc())).first()
        for owner in details.get("clients") or [str(details.get("site", "-"))]:
            out.append(Problem(str(owner), None, AGENT, alert.created_at, 1, None,
                               alert.message, None, ack[0] if ack else None,
                               ack[1] if ack else None, alert_id=alert.id,
                               acknowledged_at=ack[2] if ack else None))
    return out


def _late(session: Session, found: list[Problem], tz: ZoneInfo, now: datetime,
          client: str | None) -> list[Problem]:
    """Late jobs: marked on their problem when they have one, else a NON EXECUTEE problem of
    their own (the last run was fine, and nothing ran since)."""
    rows = schedules_and_last_runs(session, client,
                                   late_by=due_edges(schedule_kinds(session), tz, now))
    late = of_jobs(rows, tz, now)
    names = {row[0]: (row[1], row[2]) for row in rows}
    down = scheduler_late(scheduler_last_seen(session), now)
    by_job = {(p.client, p.job): p for p in found}
    new: list[Problem] = []
    quiet = [job_id for job_id, found_late in late.items() if found_late.late
             and names[job_id] not in by_job]
    successes = dict(session.execute(select(RunRow.job_id, func.max(RunRow.finished_at)).where(
        RunRow.job_id.in_(quiet), RunRow.status == RunStatus.REUSSIE.value)
        .group_by(RunRow.job_id)).all()) if quiet else {}
    hosts = dict(session.execute(select(JobRow.id, JobRow.host).where(
        JobRow.id.in_(quiet))).all()) if quiet else {}
    for job_id, lateness in late.items():
        if not lateness.late:
            continue
        owner, job = names[job_id]
        assert lateness.since is not None
        known = by_job.get((owner, job))
        if known is not None:
            known.late_since, known.missed_runs = lateness.since, len(lateness.missed)
            continue
        new.append(Problem(owner, job, RunStatus.NON_EXECUTEE.value, lateness.since,
                           len(lateness.missed), aware(successes.get(job_id)),
                           f"no run since {lateness.since:%Y-%m-%d %H:%M} UTC", None,
                           late_since=lateness.since, missed_runs=len(lateness.missed),
                           host=hosts.get(job_id), error_code=MISSED, job_id=job_id,
                           scheduler_down=down))
    return new


def _job_acknowledgements(session: Session, found: list[Problem]) -> None:
    """Acknowledgements of a job rather than of a run (a late job has no run to acknowledge):
    one holds until the job succeeds again, so one made after its last success applies, over
    a run's acknowledgement made earlier. One statement for all the jobs."""
    jobs: dict[int | None, Problem] = {p.job_id: p for p in found if p.job_id is not None}
    if not jobs:
        return
    for job_id, user, comment, at in session.execute(select(
            AcknowledgementRow.job_id, UserRow.username, AcknowledgementRow.comment,
            AcknowledgementRow.at)
            .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
            .where(AcknowledgementRow.job_id.in_([job for job in jobs if job is not None]),
                   AcknowledgementRow.run_id.is_(None), AcknowledgementRow.alert_id.is_(None))
            .order_by(AcknowledgementRow.at)):
        problem = jobs[job_id]
        when = aware(at)
        if when is None or (problem.last_success is not None and when < problem.last_success):
            continue  # an earlier outage's
        if problem.acknowledged_at is None or when >= problem.acknowledged_at:
            problem.acknowledged_by, problem.acknowledged_comment = user, comment
            problem.acknowledged_at = when


def _streak_acknowledgements(session: Session, since: dict[int, datetime]
                             ) -> dict[int, tuple[str | None, str, datetime]]:
    """Per job, the latest acknowledgement of a run of its current bad streak (scheduled at or
    after ``since[job]``): one acknowledgement holds the whole outage, over every new failure,
    until the job succeeds again. One statement for all the jobs."""
    if not since:
        return {}
    found: dict[int, tuple[str | None, str, datetime]] = {}
    for job_id, when, user, comment, at in session.execute(select(
            AcknowledgementRow.job_id, RunRow.scheduled_for, UserRow.username,
            AcknowledgementRow.comment, AcknowledgementRow.at)
            .join(RunRow, AcknowledgementRow.run_id == RunRow.id)
            .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
            .where(AcknowledgementRow.job_id.in_(list(since)),
                   RunRow.scheduled_for >= min(since.values()))
            .order_by(AcknowledgementRow.at)):
        if job_id is not None and when >= since[job_id]:
            found[job_id] = (user, comment, at)  # the latest one wins
    return found


def _bad_in_sql() -> Any:
    """Not a clean REUSSIE (failed, not run, warned, or flagged unusual), decided by the
    database: no JSON decoded for the runs that are fine, which are nearly all of them."""
    flagged = func.coalesce(cast(RunRow.sanity_flags, String), "[]") != "[]"
    return or_(RunRow.status != RunStatus.REUSSIE.value, flagged)


def _older_runs(session: Session, job_ids: list[int], before: datetime | None) -> list[int]:
    """Those of ``job_ids`` with a finished run scheduled before ``before`` (one index seek
    each): a job whose every run is in the window read has its whole streak there."""
    if not job_ids or before is None:
        return []
    older = (select(RunRow.id).where(RunRow.job_id == JobRow.id, RunRow.status.is_not(None),
                                     RunRow.scheduled_for < before)
             .correlate(JobRow).exists())
    return list(session.scalars(select(JobRow.id).where(JobRow.id.in_(job_ids), older)))


def _streaks_beyond(session: Session, job_ids: list[int]
                    ) -> dict[int, tuple[int, datetime, datetime | None]]:
    """For jobs failing for longer than the window: job -> (runs since its last REUSSIE, the
    first of them, when that REUSSIE ended). Two statements, whatever the number of jobs."""
    if not job_ids:
        return {}

    def last_good(column: Any, job: Any) -> Any:
        return (select(column).where(RunRow.job_id == job,
                                     RunRow.status == RunStatus.REUSSIE.value)
                .order_by(RunRow.scheduled_for.desc()).limit(1).scalar_subquery())

    good = {job_id: (at, end) for job_id, at, end in session.execute(
        select(JobRow.id, last_good(RunRow.scheduled_for, JobRow.id).label("at"),
               last_good(RunRow.finished_at, JobRow.id).label("end"))
        .where(JobRow.id.in_(job_ids)))}
    # One range per job (after its last REUSSIE) on the (job_id, scheduled_for) index.
    ranges = [and_(RunRow.job_id == job_id, RunRow.scheduled_for > at) if at is not None
              else RunRow.job_id == job_id for job_id, (at, _end) in good.items()]
    counts = session.execute(
        select(RunRow.job_id, func.count(), func.min(RunRow.scheduled_for))
        .where(or_(*ranges), RunRow.status.is_not(None)).group_by(RunRow.job_id)).all()
    out = {}
    for job_id, count, first in counts:
        end = good.get(job_id, (None, None))[1]
        out[job_id] = (int(count), aware(first) or datetime.now(UTC), aware(end))
    return out


@dataclass
class Cause:
    """Problems of several jobs that share one cause (one host unreachable: every job on it
    fails with the same code), shown and acknowledged as one."""

    client: str
    host: str
    code: str
    problems: list[Problem]

    @property
    def first(self) -> Problem:
        return self.problems[0]

    @property
    def jobs(self) -> list[str]:
        return [p.job or "" for p in self.problems]

    @property
    def acknowledged(self) -> bool:
        return all(p.acknowledged_by for p in self.problems)

    @property
    def scheduler(self) -> bool:
        """Jobs late because no scheduler runs (every client's)."""
        return self.code == MISSED and not self.client

    @property
    def clients(self) -> list[tuple[str, str]]:
        """(key, name) of the clients concerned, in order."""
        return list(dict.fromkeys((p.client, p.name) for p in self.problems))

    @property
    def acknowledgements(self) -> list[tuple[str | None, datetime, str, list[str]]]:
        """Each acknowledgement shown on the row, oldest first, with the jobs it holds for (one
        holds per job until that job succeeds: an earlier night's shows here)."""
        seen: dict[tuple[str | None, datetime, str], list[str]] = {}
        for p in self.problems:
            if p.acknowledged_by is not None and p.acknowledged_at is not None:
                seen.setdefault((p.acknowledged_by, p.acknowledged_at,
                                 p.acknowledged_comment or ""), []).append(p.job or "")
        return [(*key, jobs) for key, jobs in sorted(seen.items(), key=lambda i: i[0][1])]

    @property
    def unacknowledged(self) -> list[Problem]:
        return [p for p in self.problems if not p.acknowledged_by]


def by_cause(found: list[Problem]) -> list[Problem | Cause]:
    """``found`` with the problems of one cause (same client, host and error code, two jobs
    or more) gathered into one ``Cause`` where the first of them stood; the order is kept."""
    shared: dict[tuple[str, str, str], list[Problem]] = {}
    for problem in found:
        if problem.cause is not None:
            shared.setdefault(problem.cause, []).append(problem)
    out: list[Problem | Cause] = []
    placed: set[tuple[str, str, str]] = set()
    for problem in found:
        key = problem.cause
        if key is None or len(shared[key]) < 2:
            out.append(problem)
        elif key not in placed:
            placed.add(key)
            out.append(Cause(*key, shared[key]))
    return out
