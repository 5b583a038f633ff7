"""What a client's daily digest says: every job of one night, with its figures, its usual
range, its restore points and the state of the subscribed volume. Built from the history only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.findings import Finding, RunFailed, RunStatus, from_dict, worst
from orchestrator.history.models import (
    AcknowledgementRow,
    AuditRow,
    ClientRow,
    JobRow,
    RunRow,
    RunStepRow,
    SnapshotRow,
    UserRow,
)
from orchestrator.history.queries import last_successes, runs_between
from orchestrator.jobs.quota import client_state
from orchestrator.report.outcomes import client_sentences, hotline_sentence, technical
from orchestrator.report.sanity import WINDOW
from orchestrator.schedule.late import lateness
from orchestrator.schedule.spec import local_instant, next_runs, parse_schedule

# What a job's line is about: a finished run (or one recorded NON EXECUTEE), a run still in
# progress, a run due whose turn has not come (its host busy, the queue long), a run scheduled
# later in the night, or nothing due that night (a weekday job on Sunday).
DONE, RUNNING, WAITING, UPCOMING, NOT_DUE = "done", "running", "waiting", "upcoming", "not_due"


@dataclass(frozen=True)
class Acknowledged:
    """A hotline operator's "seen, I am on it" on a job's current outage (it holds until the
    job succeeds again)."""

    by: str | None
    at: datetime
    comment: str


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
    # RUNNING: its start; WAITING, UPCOMING, and a NON EXECUTEE: when it was due
    since: datetime | None = None
    # For the hotline: what the run found in its words (report/outcomes.py), the run, the host,
    # the error code that names the runbook, and who acknowledged the job's outage.
    told: list[str] = field(default_factory=list)
    run: str | None = None
    host: str | None = None
    code: str | None = None
    script_code: str | None = None
    details: list[str] = field(default_factory=list)  # codes and original messages
    acknowledged: Acknowledged | None = None

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
    # ... or a run the first one said NON EXECUTEE did happen at the site: its agent delivered
    # it late (agent/delivery.py)
    delivered_late: bool = False
    protected: datetime | None = None  # the canary last refused (baie/canary.py), if it was

    @property
    def ok_count(self) -> int:
        return sum(j.status is not None and j.status.succeeded for j in self.jobs)

    @property
    def failed_count(self) -> int:
        return sum(j.status is not None and not j.status.succeeded for j in self.jobs)

    @property
    def warned_count(self) -> int:
        return sum(j.status == RunStatus.AVERTISSEMENT for j in self.jobs)

    @property
    def due_count(self) -> int:
        """The jobs something was expected of this night (every job but those not due)."""
        return sum(j.state != NOT_DUE for j in self.jobs)

    @property
    def pending(self) -> list[JobLine]:
        return [j for j in self.jobs if j.pending]

    @property
    def counts(self) -> dict[str, int]:
        """How many jobs of the night ended each way, or are not finished (by state), in the
        order the reader is told them; only what happened (no zero)."""
        found: dict[str, int] = {}
        for key in TALLY_ORDER:
            n = sum((j.status.value if j.status is not None else j.state) == key
                    for j in self.jobs)
            if n:
                found[key] = n
        return found

    @property
    def headline(self) -> str:
        """The bracketed tag of the subject and ``X-HVBackup-Status``, for mail filters: the
        most serious thing that did happen to a job of the night, never a guess about a run
        that is not finished. In this order:

        * ECHEC: a job ran and failed (it has no restore point tonight);
        * NON EXECUTEE: else, a job did not run at all (its window passed);
        * AVERTISSEMENT: else, a job made its restore point with a reservation;
        * EN COURS: else, a job is not finished yet (in progress, waiting for its host, due
          later in the night): the client is told again when it ends;
        * REUSSIE: every job due this night succeeded (never before every run is finished).

        The words beside the tag say what happened to each job, in counts
        (``2 réussies, 1 non exécutée, 1 en cours``): the tag never stands for the night
        alone."""
        return tag_of(self.status, bool(self.pending))


# The order in which a night's jobs are counted for the reader (statuses, then states).
TALLY_ORDER = (RunStatus.REUSSIE.value, RunStatus.AVERTISSEMENT.value, RunStatus.ECHEC.value,
               RunStatus.NON_EXECUTEE.value, RUNNING, WAITING, UPCOMING)
# Tags, most serious first (see ``Digest.headline``); the summary's tag is its first client's.
TAGS = (RunStatus.ECHEC.value, RunStatus.NON_EXECUTEE.value, RunStatus.AVERTISSEMENT.value,
        "EN COURS", RunStatus.REUSSIE.value)


def tag_of(worst_status: RunStatus, pending: bool) -> str:
    """``Digest.headline`` from the worst finished status and whether a job is unfinished."""
    if worst_status == RunStatus.REUSSIE and pending:
        return "EN COURS"
    return worst_status.value


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
            findings = [from_dict(f) for f in run.findings or []]
            told, details = _told(findings, status, run, tz, loaded.config.msp.language)
            lines.append(JobLine(
                job=key, type=job.type, objects=list(job.objects), status=status,
                # A run that never started (recorded NON EXECUTEE) has no end either.
                started=run.started_at,
                finished=run.finished_at if run.started_at is not None else None,
                duration_s=run.duration_s if run.started_at is not None else None,
                bytes_read=run.bytes_read, bytes_sent=run.bytes_sent, files=run.files,
                consistency=run.consistency,
                flags=[f["reason"] for f in run.sanity_flags or []],
                error=run.error_message,
                said=client_sentences(findings, status, loaded.language_of(settings)),
                usual_read=_range([r.bytes_read for r in past if r.bytes_read is not None]),
                usual_files=_range([r.files for r in past if r.files is not None]),
                history=history, since=run.scheduled_for, told=told, run=run.uid,
                host=job.host, code=run.error_code or (findings[0].code if findings and
                                                        status != RunStatus.REUSSIE else None),
                script_code=run.script_code, details=details, **points))
        for line in lines:
            if line.status not in (None, RunStatus.REUSSIE):
                line.acknowledged = acknowledged_outage(session, jobs[line.job].id,
                                                        line.since or end, now)
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
        line.run, line.host = run.uid, job.host
        return line
    schedule = parse_schedule(job.schedule)
    window = timedelta(hours=job.window_hours)
    found = lateness(schedule, window, tz, last_run=None,
                     expected_since=max(job.expected_since, start), now=now, until=end)
    if found.late:
        line.status, line.state, line.since = RunStatus.NON_EXECUTEE, DONE, found.since
        line.error = missed_message(found.since or start, tz, hotline_language)
        line.told, line.code, line.host = [line.error], "HVB-RUN-MISSED", job.host
        line.details = ["HVB-RUN-MISSED: no run recorded"]
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


def _told(findings: list[Finding], status: RunStatus, run: RunRow, tz: Any,
          language: str) -> tuple[list[str], list[str]]:
    """What the hotline reads of a finished run, in its language (one sentence per finding,
    from the findings' kinds, objects and codes), and the technician's lines (codes and the
    original messages)."""
    if status == RunStatus.NON_EXECUTEE:  # told from when it was due, in the MSP's time
        told = [missed_message(run.scheduled_for, tz, language)]
    else:
        told = []
        for finding in findings:
            sentence = hotline_sentence(finding, language)
            if sentence not in told:
                told.append(sentence)
    if not told and status != RunStatus.REUSSIE:
        told = [hotline_sentence(Finding(None, run.error_code or "HVB-ERROR", ""), language)
                if status == RunStatus.AVERTISSEMENT else
                hotline_sentence(RunFailed(None, run.error_code or "HVB-ERROR", ""), language)]
    details = [technical(f) for f in findings if f.message]
    if not details and run.error_message:
        details = [f"{run.error_code or 'HVB-ERROR'}: {run.error_message}"]
    return told, details


def acknowledged_outage(session: Session, job_id: int, until: datetime,
                        told_at: datetime | None = None) -> Acknowledged | None:
    """The latest acknowledgement of the job's outage that includes its run scheduled at
    ``until``: one made on a run of the job scheduled after its last REUSSIE before
    ``until`` and not after ``until`` (an acknowledgement holds until the job succeeds
    again), and made by ``told_at``, the time of the message that tells it (a message never
    tells of an acknowledgement made after it)."""
    last_ok = session.scalars(select(RunRow.scheduled_for).where(
        RunRow.job_id == job_id, RunRow.status == RunStatus.REUSSIE.value,
        RunRow.scheduled_for < until).order_by(RunRow.scheduled_for.desc()).limit(1)).first()
    query = (select(UserRow.username, AcknowledgementRow.at, AcknowledgementRow.comment)
             .select_from(AcknowledgementRow)
             .join(RunRow, AcknowledgementRow.run_id == RunRow.id)
             .outerjoin(UserRow, AcknowledgementRow.user_id == UserRow.id)
             .where(AcknowledgementRow.job_id == job_id, RunRow.scheduled_for <= until)
             .order_by(AcknowledgementRow.at.desc()).limit(1))
    if told_at is not None:
        query = query.where(AcknowledgementRow.at <= told_at)
    if last_ok is not None:
        query = query.where(RunRow.scheduled_for > last_ok)
    found = session.execute(query).first()
    return None if found is None else Acknowledged(found[0], found[1], found[2])


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
    from orchestrator.report.mail import build, deliver
    from orchestrator.report.render import render

    digest = build_digest(sessions, loaded, client, night, now)
    digest.update = update
    if update:
        with sessions() as session:
            digest.delivered_late = delivered_late(session, loaded, client, night)
    rendered = render("digest", digest.language, loaded.config.msp.timezone, d=digest)
    settings = loaded.config.clients[client]
    msg = build(loaded, rendered, list(settings.contacts), status=digest.headline,
                client=client, when=night, data=client_data(digest), kind="digest", now=now)
    kind = UPDATE_KIND if update else "digest"
    suffix = f"-update-{now:%Y%m%dT%H%M%S}" if update else ""
    email = deliver(loaded, sessions, msg, kind=kind, client=client, report_date=night,
                    name=f"{night.isoformat()}-{client}-digest{suffix}", now=now,
                    send_it=send_it)
    return digest, email


UPDATE_KIND = "digest_update"


def _last_report(session: Session, client: str, night: date) -> datetime | None:
    """When the last report of ``night`` (the digest or its Complément) was made."""
    from orchestrator.history.models import EmailRow

    return session.scalars(select(EmailRow.created_at).join(
        ClientRow, EmailRow.client_id == ClientRow.id).where(
        ClientRow.key == client, EmailRow.report_date == night,
        EmailRow.kind.in_(["digest", UPDATE_KIND])).order_by(EmailRow.created_at.desc())).first()


def update_due(session: Session, loaded: LoadedConfig, client: str, night: date) -> bool:
    """Whether the client is owed a second report of ``night``: a scheduled run of that night
    was not finished when the last report of it was made (in progress, or waiting for its
    turn), and every such run has finished since."""
    last = _last_report(session, client, night)
    if last is None:
        return False
    start, end = night_bounds(loaded, night)
    ends = list(session.scalars(select(RunRow.finished_at).join(JobRow).join(ClientRow).where(
        ClientRow.key == client, JobRow.active.is_(True), RunRow.trigger == "schedule",
        RunRow.scheduled_for >= start, RunRow.scheduled_for < end,
        or_(RunRow.finished_at.is_(None), RunRow.finished_at > last,
            RunRow.replaced_at > last))))
    return bool(ends) and all(e is not None for e in ends)


def delivered_late(session: Session, loaded: LoadedConfig, client: str, night: date) -> bool:
    """Whether a run of ``night`` was delivered by a site agent after the server had told the
    client it was NON EXECUTEE, since the last report of that night."""
    last = _last_report(session, client, night)
    if last is None:
        return False
    start, end = night_bounds(loaded, night)
    return session.scalars(select(RunRow.id).join(JobRow).join(ClientRow).where(
        ClientRow.key == client, RunRow.scheduled_for >= start, RunRow.scheduled_for < end,
        RunRow.replaced_at > last).limit(1)).first() is not None


# What of a job's line the client's own JSON part holds: its figures and the words it is told,
# never the hotline's (codes, technical messages, who acknowledged what, internal phrases).
_CLIENT_JOB_FIELDS = ("job", "type", "status", "state", "started", "finished", "duration_s",
                      "bytes_read", "bytes_sent", "files", "consistency", "said", "points",
                      "oldest", "newest", "since")


def client_data(digest: Digest) -> dict[str, Any]:
    """The digest's machine-readable part, as the client may read it."""
    whole = asdict(digest)
    jobs = [{k: job[k] for k in _CLIENT_JOB_FIELDS} for job in whole["jobs"]]
    kept = {k: whole[k] for k in ("client", "name", "language", "night", "status", "copies",
                                  "parity", "msp", "phone", "portal", "update",
                                  "delivered_late", "protected")}
    quota = whole.get("quota") or {}
    kept["quota"] = {k: quota.get(k) for k in ("used", "quota", "percent", "forecast")
                     if k in quota}
    verified = whole.get("verified")
    kept["verified"] = ({"at": verified.get("at"), "ok": verified.get("ok")}
                        if isinstance(verified, dict) else None)
    return {**kept, "jobs": jobs}
