"""/api/v1: clients, jobs, runs and problems as JSON, read-only, for other tools.

Authenticated by ``Authorization: Bearer <token>`` (``hvbackup users token``) or, for a
person's browser, the dashboard session. A token acts as its user: a client account's token
sees only its client; anything else answers 404, as for what does not exist.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from orchestrator.dashboard.access import (
    admin_only,
    visible_client,
    visible_run,
    without_internal_notes,
)
from orchestrator.dashboard.auth import Viewer
from orchestrator.dashboard.problems import problems
from orchestrator.dashboard.queries import client_page, clients, job_runs, run_page
from orchestrator.dashboard.request import Caller, settings_of
from orchestrator.history.models import RunRow
from orchestrator.jobs.usage import month_usage, parse_month

router = APIRouter(prefix="/api/v1", tags=["hvbackup"])


class ClientOut(BaseModel):
    key: str
    name: str
    jobs: int
    worst_status: str | None
    failing_jobs: int
    last_run: datetime | None
    late_jobs: int  # jobs with a scheduled run that has no run in the history


class RunOut(BaseModel):
    uid: str
    trigger: str
    scheduled_for: datetime
    state: str
    status: str | None
    unusual: list[str]
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    consistency: str | None
    bytes_read: int | None
    bytes_new: int | None
    bytes_sent: int | None
    files: int | None
    error_code: str | None
    error_message: str | None

    @classmethod
    def of(cls, run: RunRow) -> RunOut:
        return cls(uid=run.uid, trigger=run.trigger, scheduled_for=run.scheduled_for,
                   state=run.state, status=run.status,
                   unusual=[str(f.get("reason", "")) for f in run.sanity_flags or []],
                   started_at=run.started_at, finished_at=run.finished_at,
                   duration_s=run.duration_s, consistency=run.consistency,
                   bytes_read=run.bytes_read, bytes_new=run.bytes_new,
                   bytes_sent=run.bytes_sent, files=run.files, error_code=run.error_code,
                   error_message=run.error_message)


class RestorePointsOut(BaseModel):
    baie: str
    count: int
    oldest: datetime | None
    newest: datetime | None


class JobOut(BaseModel):
    key: str
    type: str
    host: str
    schedule: str
    copies: list[str]
    copies_parity: str  # identical | different | unknown (no copy in 30 days) | single
    last_run: RunOut | None
    restore_points: list[RestorePointsOut]
    late_since: datetime | None  # the first scheduled run with no run in the history
    missed_runs: int  # how many scheduled runs have no run (0: on time)


class QuotaOut(BaseModel):
    status: str
    used_bytes: int
    quota_bytes: int | None
    forecast: date | None
    grace_ends: datetime | None  # when the 30 days to act end (10 % over)
    on_overrun: str  # block | next_tier


class ClientDetailOut(BaseModel):
    key: str
    name: str
    quota: QuotaOut
    jobs: list[JobOut]


class StepOut(BaseModel):
    seq: int
    name: str
    object: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    bytes_read: int | None
    bytes_new: int | None
    bytes_sent: int | None
    files: int | None
    error_code: str | None
    error_message: str | None
    details: dict[str, Any]


class EventOut(BaseModel):
    at: datetime
    level: str
    message: str


class RunDetailOut(RunOut):
    client: str
    job: str
    steps: list[StepOut]
    log: list[EventOut]


class ProblemOut(BaseModel):
    client: str
    job: str | None
    status: str
    since: datetime
    consecutive_failures: int
    last_success: datetime | None
    message: str
    run_uid: str | None
    acknowledged_by: str | None
    acknowledged_comment: str | None
    acknowledged_at: datetime | None
    baies: list[str]
    late_since: datetime | None  # the first scheduled run with no run in the history
    missed_runs: int  # how many scheduled runs have no run (0: on time)


@router.get("/clients", response_model=list[ClientOut])
def list_clients(request: Request, who: Caller) -> list[ClientOut]:
    settings = settings_of(request)
    return [ClientOut(key=c.key, name=c.name, jobs=c.jobs, worst_status=c.worst,
                      failing_jobs=c.failing, last_run=c.last_run, late_jobs=c.late)
            for c in clients(settings.sessions, tz=settings.timezone, now=settings.now(),
                             only=who.client)]


@router.get("/clients/{client}", response_model=ClientDetailOut)
def get_client(request: Request, client: str, who: Caller) -> ClientDetailOut:
    settings = settings_of(request)
    visible_client(who, client)
    page = client_page(settings.sessions, client, settings.timezone, settings.now())
    q = page.quota
    return ClientDetailOut(
        key=page.key, name=page.name,
        quota=QuotaOut(status=q.status, used_bytes=q.used, quota_bytes=q.quota,
                       forecast=q.forecast, grace_ends=q.grace_ends,
                       on_overrun=q.on_overrun),
        jobs=[JobOut(key=j.key, type=j.type, host=j.host, schedule=j.schedule, copies=j.copies,
                     copies_parity=j.parity,
                     last_run=RunOut.of(j.last) if j.last else None,
                     restore_points=[RestorePointsOut(baie=b, count=p.count, oldest=p.oldest,
                                                      newest=p.newest)
                                     for b, p in sorted(j.points.items())],
                     late_since=j.late.since, missed_runs=len(j.late.missed))
              for j in page.jobs])


@router.get("/clients/{client}/jobs/{job}/runs", response_model=list[RunOut])
def list_runs(request: Request, client: str, job: str, who: Caller,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              before: datetime | None = None) -> list[RunOut]:
    """The job's runs, newest first; page with ``before`` = the last ``scheduled_for``."""
    visible_client(who, client)
    return [_as_seen(who, RunOut.of(r)) for r in job_runs(settings_of(request).sessions, client,
                                                         job, limit, before)]


def _as_seen(who: Viewer, run: RunOut) -> RunOut:
    """A client account gets the figures and the status, not the hotline's technical text."""
    if who.staff:
        return run
    return run.model_copy(update={"error_code": None, "error_message": None})


@router.get("/runs/{uid}", response_model=RunDetailOut)
def get_run(request: Request, uid: str, who: Caller) -> RunDetailOut:
    settings = settings_of(request)
    visible_run(settings.sessions, who, uid)
    page = run_page(settings.sessions, uid)
    base = _as_seen(who, RunOut.of(page.run)).model_dump()
    staff = who.staff  # a client reads figures and states; the technical text is the hotline's
    return RunDetailOut(
        **base, client=page.client, job=page.job,
        steps=[StepOut(seq=s.seq, name=s.name, object=s.object, status=s.status,
                       started_at=s.started_at, finished_at=s.finished_at,
                       bytes_read=s.bytes_read, bytes_new=s.bytes_new, bytes_sent=s.bytes_sent,
                       files=s.files, error_code=s.error_code if staff else None,
                       error_message=s.error_message if staff else None,
                       details=(s.details or {}) if staff else {}) for s in page.steps],
        log=[EventOut(at=e.at, level=e.level, message=e.message) for e in page.events]
        if staff else [])


@router.get("/problems", response_model=list[ProblemOut])
def list_problems(request: Request, who: Caller, client: str | None = None,
                  status: str | None = None, baie: str | None = None) -> list[ProblemOut]:
    """What needs attention, worst and oldest first (the dashboard's home page)."""
    if client is not None:
        visible_client(who, client)
    settings = settings_of(request)
    found = without_internal_notes(who, problems(
        settings.sessions, tz=settings.timezone, now=settings.now(), client=who.client or client),
        settings.language)
    return [ProblemOut(client=p.client, job=p.job, status=p.status, since=p.since,
                       consecutive_failures=p.failures, last_success=p.last_success,
                       message=p.message, run_uid=p.run_uid,
                       acknowledged_by=p.acknowledged_by,
                       acknowledged_comment=p.acknowledged_comment,
                       acknowledged_at=p.acknowledged_at, baies=p.baies,
                       late_since=p.late_since, missed_runs=p.missed_runs)
            for p in found if (status is None or p.status == status)
            and (baie is None or baie in p.baies)]


@router.get("/usage")
def get_usage(request: Request, who: Caller, month: str) -> dict[str, Any]:
    """A month (``YYYY-MM``) of usage per client, for invoicing (admin accounts only)."""
    admin_only(who)
    settings = settings_of(request)
    try:
        first = parse_month(month)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    with settings.sessions() as session:
        rows = month_usage(session, first, settings.timezone)
    return {"month": f"{first:%Y-%m}", "clients": [r.to_dict() for r in rows]}
