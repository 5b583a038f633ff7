"""The night: which runs are due, which were missed, and the runs asked for from the dashboard.

The history is the truth: a run is due when the schedule says so and the history has no run
for that instant; it is claimed by inserting it (the database refuses a second claim, so two
schedulers never run a job twice); one whose window has passed without a run is recorded
NON EXECUTEE. Nothing was expected of a job before it entered the history, nor of a client
whose contract has ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update

from orchestrator.config.load import JobRef
from orchestrator.config.models import CENTRAL_SITE
from orchestrator.findings import Missed
from orchestrator.history.models import RunRequestRow
from orchestrator.history.queries import (
    jobs_expected_since,
    pending_requests,
    runs_scheduled_since,
)
from orchestrator.history.recorder import RunAlreadyClaimed, record_missed
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.offboard import offboarded
from orchestrator.jobs.run import Claim, RunResult, claim_run, new_run_uid, run_job
from orchestrator.report.hotline import record_run_alert
from orchestrator.schedule.spec import runs_between

log = logging.getLogger(__name__)

# How far back a scheduler that was down looks for the runs it missed: the longest retention
# in the contracts (5 weeks) is what a client could still ask about.
LOOKBACK = timedelta(days=35)


@dataclass(frozen=True)
class Due:
    ref: JobRef
    scheduled_for: datetime

    @property
    def window_end(self) -> datetime:
        return self.scheduled_for + timedelta(hours=self.ref.job.window_hours)

    @property
    def host(self) -> str:
        """The host it runs on: one run at a time per host."""
        return f"{self.ref.client_name}/{self.ref.job.host}"


def agent_runs(ref: JobRef) -> bool:
    """Whether ``ref`` runs at a site agent (its host is on a site of its own), not on the
    central server's scheduler."""
    host = ref.client.hosts.get(ref.job.host)
    return host is not None and host.site != CENTRAL_SITE


def due_runs(refs: list[JobRef], tz: ZoneInfo, since: datetime, now: datetime) -> list[Due]:
    """Scheduled instants in ``(since, now]`` of every enabled job, oldest first (pure)."""
    out = []
    for ref in refs:
        if ref.job.enabled:
            out += [Due(ref, t) for t in runs_between(ref.job.schedule, tz, since, now)]
    return sorted(out, key=lambda d: (d.scheduled_for, d.ref.label))


def expected(ctx: RunContext, now: datetime) -> list[Due]:
    """The scheduled runs of the last 35 days the history has no run for, oldest first: due
    (window open) or missed (window passed). A scheduler that was down for days thus records
    every night it missed; nothing is expected before a job existed or had its schedule."""
    loaded = ctx.loaded
    since = now - LOOKBACK
    with ctx.sessions() as session:
        expected_since = jobs_expected_since(session)
        recorded = runs_scheduled_since(session, since)
    today = now.astimezone(loaded.config.msp.timezone).date()
    ended = {c for c in loaded.config.clients if offboarded(ctx.sessions, c, today)}
    out = []
    for due in due_runs(list(loaded.jobs()), loaded.config.msp.timezone, since, now):
        key = (due.ref.client_name, due.ref.job_name)
        if due.scheduled_for < expected_since.get(key, now):
            continue  # before the job existed, or under a schedule it no longer has
        if due.ref.client_name in ended:
            continue  # contract ended: nothing expected either
        if (*key, due.scheduled_for) in recorded:
            continue
        out.append(due)
    return out


def record_not_run(ctx: RunContext, due: Due, now: datetime) -> bool:
    """Record ``due`` NON EXECUTEE (and alert the hotline); False when another scheduler
    recorded it first."""
    tz = ctx.loaded.config.msp.timezone  # the hotline reads its own time, not UTC
    finding = Missed(None, "HVB-RUN-MISSED", (
        f"NON EXECUTEE: the run scheduled on "
        f"{due.scheduled_for.astimezone(tz):%d/%m/%Y at %H:%M} did not start before the end "
        f"of its window ({due.window_end.astimezone(tz):%H:%M}): the orchestrator was stopped "
        "or busy, or the job waited for its host"))
    uid = new_run_uid(due.scheduled_for)
    if not record_missed(ctx.sessions, due.ref.client_name, due.ref.job_name, uid,
                         due.scheduled_for, due.window_end, now, finding):
        return False
    record_run_alert(ctx.sessions, uid, now)
    log.warning("%s: %s", due.ref.label, finding.message)
    return True


def claim_due(ctx: RunContext, due: Due) -> Claim | None:
    """Claim ``due`` (from then on it shows in progress: a report built meanwhile says so);
    None when another scheduler claimed it first."""
    try:
        return claim_run(ctx, due.ref, scheduled_for=due.scheduled_for, trigger="schedule")
    except RunAlreadyClaimed:
        return None


def run_due(ctx: RunContext, due: Due, claim: Claim | None = None) -> RunResult | None:
    """Run ``due`` as scheduled (claimed already, or claimed here); None when another
    scheduler claimed it first."""
    try:
        result = run_job(ctx, due.ref, scheduled_for=due.scheduled_for, trigger="schedule",
                         claim=claim)
    except RunAlreadyClaimed:
        return None
    log.info("%s: %s", due.ref.label, result.status)
    return result


@dataclass(frozen=True)
class Request:
    """A "run now" asked from the dashboard."""

    id: int
    client: str
    job: str
    by: str


def requests(ctx: RunContext) -> list[Request]:
    with ctx.sessions() as session:
        return [Request(*row) for row in pending_requests(session)]


def take_request(ctx: RunContext, request: Request, now: datetime) -> bool:
    """Mark the request started; False when another scheduler took it."""
    with ctx.sessions() as session, session.begin():
        taken = session.execute(update(RunRequestRow).where(
            RunRequestRow.id == request.id, RunRequestRow.started_at.is_(None)).values(
            started_at=now))
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def run_requested(ctx: RunContext, ref: JobRef, request: Request) -> RunResult | None:
    """Run a taken request now, and link the request to its run."""
    try:
        result = run_job(ctx, ref, trigger="dashboard")
    except RunAlreadyClaimed:
        return None
    with ctx.sessions() as session, session.begin():
        session.get_one(RunRequestRow, request.id).run_uid = result.uid
    log.info("%s: %s (run now)", ref.label, result.status)
    return result
