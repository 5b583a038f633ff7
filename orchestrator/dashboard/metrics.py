"""/metrics in the Prometheus text format (0.0.4): last status per job, last success and last
run times, whether each job is late and by how many runs (schedule/late.py: a scheduler that is
down records nothing, this still tells), bytes stored per client and baie, subscribed volume,
and for the MSP's own accounts when a scheduler was last seen. Same authentication and scope as
the API (a Prometheus ``authorization: credentials`` token)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.queries import aware, last_run_subquery
from orchestrator.dashboard.request import Caller, settings_of
from orchestrator.history.models import BaieUsageRow, ClientRow, JobRow, RunRow, RunStatus
from orchestrator.history.queries import scheduler_last_seen, schedules_and_last_runs
from orchestrator.schedule.late import ON_TIME, of_jobs

router = APIRouter(include_in_schema=False)
STATUSES = [s.value for s in RunStatus]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ts(value: datetime | None) -> str:
    return "NaN" if value is None else f"{value.timestamp():.0f}"


def exposition(sessions: sessionmaker[Session], client: str | None, tz: ZoneInfo,
               now: datetime) -> str:
    last = last_run_subquery()
    success = (select(RunRow.finished_at).where(RunRow.job_id == JobRow.id,
                                                 RunRow.status == RunStatus.REUSSIE.value)
               .order_by(RunRow.scheduled_for.desc()).limit(1).correlate(JobRow)
               .scalar_subquery())
    with sessions() as session:
        jobs = select(ClientRow.key, JobRow.key, RunRow.status, RunRow.finished_at,
                      success.label("success")).join(ClientRow).outerjoin(
            RunRow, RunRow.id == last).where(JobRow.active.is_(True))
        # The latest measurement per client and baie: the distinct pairs come from the index
        # at once, then one index seek each (a GROUP BY over years of measurements is slow).
        pairs = select(BaieUsageRow.client_id, BaieUsageRow.baie).distinct().subquery()
        latest = (select(BaieUsageRow.bytes_stored).where(
            BaieUsageRow.client_id == pairs.c.client_id, BaieUsageRow.baie == pairs.c.baie)
            .order_by(BaieUsageRow.measured_at.desc()).limit(1).scalar_subquery())
        usage = select(ClientRow.key, pairs.c.baie, latest).join(
            ClientRow, ClientRow.id == pairs.c.client_id)
        quotas = select(ClientRow.key, ClientRow.quota_bytes).where(
            ClientRow.quota_bytes.is_not(None))
        if client is not None:
            jobs = jobs.where(ClientRow.key == client)
            usage = usage.where(ClientRow.key == client)
            quotas = quotas.where(ClientRow.key == client)
        job_rows = session.execute(jobs.order_by(ClientRow.key, JobRow.key)).all()
        usage_rows = session.execute(usage.order_by(ClientRow.key, pairs.c.baie)).all()
        quota_rows = session.execute(quotas.order_by(ClientRow.key)).all()
        schedules = schedules_and_last_runs(session, client)
        seen = scheduler_last_seen(session) if client is None else None
    late = of_jobs(schedules, tz, now)
    late_of = {(row[1], row[2]): late.get(row[0], ON_TIME) for row in schedules}
    out = ["# HELP hvbackup_job_last_status Status of the job's last finished run (1 for it).",
           "# TYPE hvbackup_job_last_status gauge"]
    for owner, job, status, _finished, _success in job_rows:
        for value in STATUSES:
            out.append(f'hvbackup_job_last_status{{client="{_label(owner)}",job="{_label(job)}",'
                       f'status="{value}"}} {1 if status == value else 0}')
    out += ["# HELP hvbackup_job_last_success_timestamp_seconds End of the last REUSSIE run.",
            "# TYPE hvbackup_job_last_success_timestamp_seconds gauge"]
    for owner, job, _status, _finished, succeeded in job_rows:
        out.append(f'hvbackup_job_last_success_timestamp_seconds{{client="{_label(owner)}",'
                   f'job="{_label(job)}"}} {_ts(aware(succeeded))}')
    out += ["# HELP hvbackup_job_last_run_timestamp_seconds End of the last finished run.",
            "# TYPE hvbackup_job_last_run_timestamp_seconds gauge"]
    for owner, job, _status, finished, _success in job_rows:
        out.append(f'hvbackup_job_last_run_timestamp_seconds{{client="{_label(owner)}",'
                   f'job="{_label(job)}"}} {_ts(finished)}')
    out += ["# HELP hvbackup_job_late 1 when a scheduled run of the job has no run in the "
            "history and its window has passed.",
            "# TYPE hvbackup_job_late gauge"]
    for owner, job, *_rest in job_rows:
        found = late_of.get((owner, job), ON_TIME)
        out.append(f'hvbackup_job_late{{client="{_label(owner)}",job="{_label(job)}"}} '
                   f'{1 if found.late else 0}')
    out += ["# HELP hvbackup_job_missed_runs Scheduled runs with no run in the history.",
            "# TYPE hvbackup_job_missed_runs gauge"]
    for owner, job, *_rest in job_rows:
        found = late_of.get((owner, job), ON_TIME)
        out.append(f'hvbackup_job_missed_runs{{client="{_label(owner)}",job="{_label(job)}"}} '
                   f'{len(found.missed)}')
    if client is None:
        out += ["# HELP hvbackup_scheduler_last_seen_timestamp_seconds When a scheduler last "
                "finished a cycle.",
                "# TYPE hvbackup_scheduler_last_seen_timestamp_seconds gauge",
                f"hvbackup_scheduler_last_seen_timestamp_seconds {_ts(seen)}"]
    out += ["# HELP hvbackup_client_stored_bytes Bytes the client's repository takes on a baie.",
            "# TYPE hvbackup_client_stored_bytes gauge"]
    for owner, baie, stored in usage_rows:
        out.append(f'hvbackup_client_stored_bytes{{client="{_label(owner)}",'
                   f'baie="{_label(baie)}"}} {stored}')
    out += ["# HELP hvbackup_client_quota_bytes The client's subscribed volume.",
            "# TYPE hvbackup_client_quota_bytes gauge"]
    for owner, quota in quota_rows:
        out.append(f'hvbackup_client_quota_bytes{{client="{_label(owner)}"}} {quota}')
    return "\n".join(out) + "\n"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, who: Caller) -> PlainTextResponse:
    settings = settings_of(request)
    return PlainTextResponse(exposition(settings.sessions, who.client, settings.timezone,
                                        settings.now()),
                             media_type="text/plain; version=0.0.4; charset=utf-8")
