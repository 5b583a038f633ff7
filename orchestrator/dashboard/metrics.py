"""/metrics in the Prometheus text format (0.0.4): last status per job, last success and last
run times, bytes stored per client and baie, subscribed volume. Same authentication and scope as
the API (a Prometheus ``authorization: credentials`` token)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.queries import aware, last_run_subquery
from orchestrator.dashboard.request import Caller, settings_of
from orchestrator.history.models import BaieUsageRow, ClientRow, JobRow, RunRow, RunStatus

router = APIRouter(include_in_schema=False)
STATUSES = [s.value for s in RunStatus]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ts(value: datetime | None) -> str:
    return "NaN" if value is None else f"{value.timestamp():.0f}"


def exposition(sessions: sessionmaker[Session], client: str | None) -> str:
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
    return PlainTextResponse(exposition(settings_of(request).sessions, who.client),
                             media_type="text/plain; version=0.0.4; charset=utf-8")
