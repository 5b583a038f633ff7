"""What a client's daily digest says: every job of one night, with its figures, its usual
range, its restore points and the state of the subscribed volume. Built from the history only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
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
from orchestrator.schedule.spec import local_instant


def status_of_row(run: RunRow) -> RunStatus:
    """A run's status as the reports show it (a run without one yet is counted as failed)."""
    return RunStatus(run.status) if run.status else RunStatus.ECHEC


@dataclass
class JobLine:
    job: str
    type: str
    objects: list[str]
    status: RunStatus
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

    @property
    def ok_count(self) -> int:
        return sum(j.status.succeeded for j in self.jobs)

    @property
    def failed_count(self) -> int:
        return sum(not j.status.succeeded for j in self.jobs)


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
        for key, job in sorted(jobs.items()):
            runs = runs_between(session, job.id, start, end)
            if not runs:
                continue
            run = min(runs, key=lambda r: status_of_row(r).rank)
            past = last_successes(session, job.id, start, WINDOW)
            month = runs_between(session, job.id, end - timedelta(days=30), end)
            snaps = list(session.scalars(select(SnapshotRow).where(
                SnapshotRow.job_id == job.id, SnapshotRow.forgotten_at.is_(None),
                SnapshotRow.baie == (job.copies[0] if job.copies else ""))))
            tz = loaded.config.msp.timezone
            lines.append(JobLine(
                job=key, type=job.type, objects=list(job.objects), status=status_of_row(run),
                started=run.started_at, finished=run.finished_at, duration_s=run.duration_s,
                bytes_read=run.bytes_read, bytes_sent=run.bytes_sent, files=run.files,
                consistency=run.consistency,
                flags=[f["reason"] for f in run.sanity_flags or []],
                error=run.error_message,
                said=client_sentences([from_dict(f) for f in run.findings or []],
                                      status_of_row(run), loaded.language_of(settings)),
                usual_read=_range([r.bytes_read for r in past if r.bytes_read is not None]),
                usual_files=_range([r.files for r in past if r.files is not None]),
                points=len(snaps), oldest=min((s.taken_at for s in snaps), default=None),
                newest=max((s.taken_at for s in snaps), default=None),
                history=[(r.scheduled_for.astimezone(tz).date(), r.bytes_read or 0,
                          status_of_row(r)) for r in month]))
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
    state = client_state(sessions, loaded, client, now)
    quota = {"status": state.status, "used": state.used, "quota": state.quota,
             "percent": state.percent, "forecast": state.forecast}
    copies = list(settings.copies or [])
    msp = loaded.config.msp
    portal = f"{msp.dashboard_url.rstrip('/')}/clients/{client}" if msp.dashboard_url else None
    return Digest(client, settings.name, loaded.language_of(settings), night,
                  worst([line.status for line in lines], RunStatus.NON_EXECUTEE), lines, quota,
                  list(msp.hotline), copies, parity, verified, msp=msp.name, phone=msp.phone,
                  portal=portal)


def _range(values: list[int]) -> tuple[float, float] | None:
    """The usual range shown next to a figure: the 10th to 90th percentile of recent runs."""
    if len(values) < 3:
        return None
    ordered = sorted(values)
    cut = len(ordered) // 10
    return float(ordered[cut]), float(ordered[-1 - cut])


def send_digest(loaded: LoadedConfig, sessions: sessionmaker[Session], client: str, night: date,
                now: datetime, *, send_it: bool) -> tuple[Digest, Any]:
    """Build, render and deliver one client's digest (outbox always; SMTP when asked)."""
    from dataclasses import asdict

    from orchestrator.report.mail import build, deliver
    from orchestrator.report.render import render

    digest = build_digest(sessions, loaded, client, night, now)
    rendered = render("digest", digest.language, loaded.config.msp.timezone, d=digest)
    settings = loaded.config.clients[client]
    msg = build(loaded, rendered, list(settings.contacts), status=digest.status, client=client,
                when=night, data=asdict(digest), kind="digest", now=now)
    email = deliver(loaded, sessions, msg, kind="digest", client=client, report_date=night,
                    name=f"{night.isoformat()}-{client}-digest", now=now, send_it=send_it)
    return digest, email
