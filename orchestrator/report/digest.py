"""What a client's daily digest says: every job of one night, with its figures, its usual
range, its restore points and the state of the subscribed volume. Built from the history only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.findings import RunStatus, from_dict, worst
from orchestrator.history.models import (
    AuditRow,
    ClientRow,
    JobRow,
    RunRow,
    RunStepRow,
    SnapshotRow,
)
from orchestrator.history.queries import last_successes, runs_between
from orchestrator.jobs.quota import client_state
from orchestrator.report.outcomes import client_sentences
from orchestrator.report.sanity import WINDOW
from orchestrator.schedule.late import lateness
from orchestrator.schedule.spec import local_instant, next_runs, parse_schedule

# What a job's line is about: a finished run (or one recorded NON EXECUTEE), a run still in
# progress, a run due whose turn has not come (its host busy, the queue long), a run scheduled
# later in the night, or nothing due that night (a weekday job on Sunday).
DONE, RUNNING, WAITING, UPCOMING, NOT_DUE = "done", "running", "waiting", "upcoming", "not_due"


@dataclass
class JobLine:
    job: str
    type: str
    objects: list[str]
    status: RunStatus | None  # None: not finished (see ``state``)
    started: datetime | None
    finished: datetime | None
    duration_s: float | None
    bytes_read: int | None
    bytes_sent: int | None
    files: int | None
    consistency: str | None
    flags: list[str]
    error: str | None  # the technical message, for the hotline
    said: list[str]  # what the client is told of it (report/outcomes.py)
    usual_read: tuple[float, float] | None
    usual_files: tuple[float, float] | None
    points: int
    oldest: datetime | None
    newest: datetime | None
    history: list[tuple[date, int, RunStatus]] = field(default_factory=list)  # 30 days
    state: str = DONE  # DONE | RUNNING | WAITING | UPCOMING | NOT_DUE
    since: datetime | None = None  # RUNNING: its start; WAITING, UPCOMING: when it is due

    @property
    def pending(self) -> bool:
        """Not finished yet: in progress, due and waiting for its turn, or due later."""
        return self.state in (RUNNING, WAITING, UPCOMING)


@dataclass
class Digest:
    client: str
    name: str
    language: str
    night: date
    status: RunStatus
    jobs: list[JobLine]
    quota: dict[str, Any]
    hotline: list[str]
    copies: list[str]
    parity: datetime | None = None  # last time the copies were seen identical
    verified: dict[str, Any] | None = None  # the last verification of the repository
    msp: str = ""  # who looks after the backups, as the client knows them
    phone: str | None = None  # the hotline's phone
    portal: str | None = None  # the client's own page on the dashboard, when it has an address
    update: bool = False  # a second message: the runs in progress at the first one ended
    protected: datetime | None = None  # the canary last refused (baie/canary.py), if it was

    @property
    def ok_count(self) -> int:
        return sum(j.status is not None and j.status.succeeded for j in self.jobs)

    @property
    def failed_count(self) -> int:
        return sum(j.status is not None and not j.status.succeeded for j in self.jobs)

    @property
    def due_count(self) -> int:
        """The jobs something was expected of this night (every job but those not due)."""
        return sum(j.state != NOT_DUE for j in self.jobs)

    @property
    def pending(self) -> list[JobLine]:
        return [j for j in self.jobs if j.pending]

    @property
    def headline(self) -> str:
        """The overall result: the worst status, or EN COURS while nothing failed and a run is
        not finished (never REUSSIE before every run is)."""
        if self.status == RunStatus.REUSSIE and self.pending:
            return "EN COURS"
        return self.status.value


def night_bounds(loaded: LoadedConfig, night: date) -> tuple[datetime, datetime]:
    """A night runs from noon of its date to noon the next day (MSP time)."""
    tz = loaded.config.msp.timezone
    noon = time(12)
    return local_instant(night, noon, tz), local_instant(night + timedelta(days=1), noon, tz)


def build_digest(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                 night: date, now: datetime) -> Digest:
    settings = loaded.config.clients[client]
    start, end = night_bounds(loaded, night)
    lines = []
    with sessions() as session:
        jobs = {j.key: j for j in session.scalars(select(JobRow).join(ClientRow).where(
            ClientRow.key == client, JobRow.active.is_(True)))}
        tz = loaded.config.msp.timezone
        for key, job in sorted(jobs.items()):
            runs = runs_between(session, job.id, start, end)
            finished = [r for r in runs if r.status is not None]
            month = runs_between(session, job.id, end - timedelta(days=30), end)
            history = [(r.scheduled_for.astimezone(tz).date(), r.bytes_read or 0,
                        RunStatus(r.status)) for r in month if r.status is not None]
            snaps = list(session.scalars(select(SnapshotRow).where(
                SnapshotRow.job_id == job.id, SnapshotRow.forgotten_at.is_(None),
                SnapshotRow.baie == (job.copies[0] if job.copies else ""))))
            points: dict[str, Any] = {"points": len(snaps),
                                      "oldest": min((s.taken_at for s in snaps), default=None),
                                      "newest": max((s.taken_at for s in snaps), default=None)}
            if not finished:
                lines.append(_unfinished_line(job, runs, start, end, now, tz, history,
                                              points, loaded.language_of(settings),
                                              loaded.config.msp.language))
                continue
            run = min(finished, key=lambda r: RunStatus(str(r.status)).rank)
            status = RunStatus(str(run.status))
            past = last_successes(session, job.id, start, WINDOW)
            lines.append(JobLine(
                job=key, type=job.type, objects=list(job.objects), status=status,
                started=run.started_at, finished=run.finished_at, duration_s=run.duration_s,
                bytes_read=run.bytes_read, bytes_sent=run.bytes_sent, files=run.files,
                consistency=run.consistency,
                flags=[f["reason"] for f in run.sanity_flags or []],
                error=run.error_message,
                said=client_sentences([from_dict(f) for f in run.findings or []],
                                      status, loaded.language_of(settings)),
                usual_read=_range([r.bytes_read for r in past if r.bytes_read is not None]),
                usual_files=_range([r.files for r in past if r.files is not None]),
                history=history, **points))
    with sessions() as session:
        parity = session.scalars(
            select(RunStepRow.finished_at).join(RunRow).join(JobRow).join(ClientRow)
            .where(ClientRow.key == client, RunStepRow.name == "copy",
                   RunStepRow.status == "ok").order_by(RunStepRow.finished_at.desc())).first()
        audit = session.scalars(select(AuditRow).where(
            AuditRow.action == "repository.verify", AuditRow.target.like(f"{client}/%"))
            .order_by(AuditRow.at.desc())).first()
        verified = None if audit is None else {"at": audit.at, "ok": audit.details.get("ok"),
                                               "baie": (audit.target or "").split("/")[-1]}
        # The last canary tried (a step that could not reach the baie says nothing): refused,
        # the copy is protected against deletion since then; allowed, nothing is claimed.
        canaries = session.scalars(
            select(RunStepRow).join(RunRow).join(JobRow).join(ClientRow)
            .where(ClientRow.key == client, RunStepRow.name == "canary",
                   RunStepRow.finished_at.is_not(None))
            .order_by(RunStepRow.finished_at.desc()).limit(20))
        tried = next((c for c in canaries if "protected" in (c.details or {})), None)
        protected = tried.finished_at if tried and tried.details["protected"] else None
    state = client_state(sessions, loaded, client, now)
    quota = {"status": state.status, "used": state.used, "quota": state.quota,
             "percent": state.percent, "forecast": state.forecast}
    copies = list(settings.copies or [])
    msp = loaded.config.msp
    portal = f"{msp.dashboard_url.rstrip('/')}/clients/{client}" if msp.dashboard_url else None
    return Digest(client, settings.name, loaded.language_of(settings), night,
                  worst([line.status for line in lines if line.status is not None],
                        RunStatus.REUSSIE if lines else RunStatus.NON_EXECUTEE),
                  lines, quota, list(msp.hotline), copies, parity, verified, msp=msp.name,
                  phone=msp.phone, portal=portal, protected=protected)


def missed_message(since: datetime, tz: Any, language: str) -> str:
    """The hotline's sentence for a run that never started, at the MSP's local time."""
    local = since.astimezone(tz)
    if language == "fr":
        return (f"aucune exécution de celle prévue le {local:%d/%m/%Y à %H:%M}, et sa plage "
                "horaire est passée : le planificateur tournait-il ?")
    return (f"no run of the one scheduled on {local:%d/%m/%Y at %H:%M}, and its window has "
            "passed: was the scheduler running?")


def _unfinished_line(job: JobRow, runs: list[RunRow], start: datetime, end: datetime,
                     now: datetime, tz: Any, history: list[tuple[date, int, RunStatus]],
                     points: dict[str, Any], language: str,
                     hotline_language: str = "fr") -> JobLine:
    """A job with no finished run this night: in progress, waiting for its turn, not run at
    all (its window passed: NON EXECUTEE, whether or not a scheduler was there to record it),
    or not due (nothing scheduled that night)."""
    line = JobLine(job=job.key, type=job.type, objects=list(job.objects), status=None,
                   started=None, finished=None, duration_s=None, bytes_read=None,
                   bytes_sent=None, files=None, consistency=None, flags=[], error=None,
                   said=[], usual_read=None, usual_files=None, history=history, **points)
    if runs:  # claimed or running
        run = runs[-1]
        line.state, line.since, line.started = RUNNING, run.started_at or run.scheduled_for, \
            run.started_at
        return line
    schedule = parse_schedule(job.schedule)
    window = timedelta(hours=job.window_hours)
    found = lateness(schedule, window, tz, last_run=None,
                     expected_since=max(job.expected_since, start), now=now, until=end)
    if found.late:
        line.status, line.state, line.since = RunStatus.NON_EXECUTEE, DONE, found.since
        line.error = missed_message(found.since or start, tz, hotline_language)
        line.said = client_sentences([], RunStatus.NON_EXECUTEE, language)
        return line
    if found.waiting is not None:
        line.state, line.since = WAITING, found.waiting
        return line
    upcoming = next(iter(next_runs(schedule, tz, max(now, start), 1)), None)
    if upcoming is not None and job.expected_since <= upcoming < end:
        line.state, line.since = UPCOMING, upcoming
    else:
        line.state = NOT_DUE
    return line


def _range(values: list[int]) -> tuple[float, float] | None:
    """The usual range shown next to a figure: the 10th to 90th percentile of recent runs."""
    if len(values) < 3:
        return None
    ordered = sorted(values)
    cut = len(ordered) // 10
    return float(ordered[cut]), float(ordered[-1 - cut])


def send_digest(loaded: LoadedConfig, sessions: sessionmaker[Session], client: str, night: date,
                now: datetime, *, send_it: bool, update: bool = False) -> tuple[Digest, Any]:
    """Build, render and deliver one client's digest (outbox always; SMTP when asked).
    ``update``: the second message of a night whose first one had runs in progress."""
    from dataclasses import asdict

    from orchestrator.report.mail import build, deliver
    from orchestrator.report.render import render

    digest = build_digest(sessions, loaded, client, night, now)
    digest.update = update
    rendered = render("digest", digest.language, loaded.config.msp.timezone, d=digest)
    settings = loaded.config.clients[client]
    msg = build(loaded, rendered, list(settings.contacts), status=digest.headline,
                client=client, when=night, data=asdict(digest), kind="digest", now=now)
    kind = UPDATE_KIND if update else "digest"
    suffix = f"-update-{now:%Y%m%dT%H%M%S}" if update else ""
    email = deliver(loaded, sessions, msg, kind=kind, client=client, report_date=night,
                    name=f"{night.isoformat()}-{client}-digest{suffix}", now=now,
                    send_it=send_it)
    return digest, email


UPDATE_KIND = "digest_update"


def update_due(session: Session, loaded: LoadedConfig, client: str, night: date) -> bool:
    """Whether the client is owed a second report of ``night``: a scheduled run of that night
    was not finished when the last report of it was made (in progress, or waiting for its
    turn), and every such run has finished since."""
    from orchestrator.history.models import EmailRow

    last = session.scalars(select(EmailRow.created_at).join(
        ClientRow, EmailRow.client_id == ClientRow.id).where(
        ClientRow.key == client, EmailRow.report_date == night,
        EmailRow.kind.in_(["digest", UPDATE_KIND])).order_by(EmailRow.created_at.desc())).first()
    if last is None:
        return False
    start, end = night_bounds(loaded, night)
    ends = list(session.scalars(select(RunRow.finished_at).join(JobRow).join(ClientRow).where(
        ClientRow.key == client, JobRow.active.is_(True), RunRow.trigger == "schedule",
        RunRow.scheduled_for >= start, RunRow.scheduled_for < end,
        or_(RunRow.finished_at.is_(None), RunRow.finished_at > last))))
    return bool(ends) and all(e is not None for e in ends)
