"""Mirror the configuration's clients and jobs into the history database.

Rows are never deleted: a client or job removed from the config is marked inactive, so its
runs, restore points and audit trail stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import FilesJob, HypervVmJob, JobBase, SqlServerJob
from orchestrator.history.models import AuditRow, ClientRow, JobRow


@dataclass
class SyncResult:
    clients_added: list[str] = field(default_factory=list)
    clients_deactivated: list[str] = field(default_factory=list)
    jobs_added: list[str] = field(default_factory=list)
    jobs_deactivated: list[str] = field(default_factory=list)
    updated: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.clients_added or self.clients_deactivated or self.jobs_added
                    or self.jobs_deactivated or self.updated)


def job_objects(job: JobBase) -> list[str]:
    """What a job backs up, as shown to people: VM names, databases or folders."""
    if isinstance(job, HypervVmJob):
        return list(job.vms)
    if isinstance(job, SqlServerJob):
        return list(job.databases)
    if isinstance(job, FilesJob):
        return list(job.paths)
    return []


def sync_config(session: Session, loaded: LoadedConfig, now: datetime, actor: str) -> SyncResult:
    """Insert, update or deactivate client and job rows to match ``loaded``. Idempotent.

    Changes are audited under ``actor``. The caller commits.
    """
    result = SyncResult()
    cfg = loaded.config
    clients = {row.key: row for row in session.scalars(select(ClientRow))}
    for key, client in cfg.clients.items():
        values: dict[str, object] = {
            "name": client.name,
            "language": loaded.language_of(client),
            "quota_bytes": int(client.quota_gb * 1_000_000_000) if client.quota_gb is not None
            else None,
            "quota_on_overrun": loaded.on_overrun_of(client),
            "active": True,
        }
        row = clients.get(key)
        if row is None:
            row = ClientRow(key=key, created_at=now, updated_at=now, **values)
            session.add(row)
            clients[key] = row
            result.clients_added.append(key)
        elif _apply(row, values, now):
            result.updated += 1
    for key, row in clients.items():
        if key not in cfg.clients and row.active:
            row.active = False
            row.updated_at = now
            result.clients_deactivated.append(key)
    session.flush()

    jobs = {(row.client.key, row.key): row for row in session.scalars(select(JobRow))}
    for ref in loaded.jobs():
        job_values: dict[str, object] = {
            "type": ref.job.type,
            "host": ref.job.host,
            "schedule": ref.job.schedule.describe(),
            "window_hours": float(ref.job.window_hours),
            "objects": job_objects(ref.job),
            "copies": loaded.copies_of(ref.client, ref.job),
            "active": ref.job.enabled,
        }
        jrow = jobs.get((ref.client_name, ref.job_name))
        if jrow is None:
            jrow = JobRow(client_id=clients[ref.client_name].id, key=ref.job_name,
                          created_at=now, updated_at=now, expected_since=now, **job_values)
            session.add(jrow)
            result.jobs_added.append(ref.label)
        else:
            expected = (jrow.schedule, jrow.window_hours, jrow.active)
            if _apply(jrow, job_values, now):
                result.updated += 1
                if (jrow.schedule, jrow.window_hours, jrow.active) != expected:
                    jrow.expected_since = now  # nothing was due before under this schedule
    configured = {(r.client_name, r.job_name) for r in loaded.jobs()}
    for (client_key, job_key), jrow in jobs.items():
        if (client_key, job_key) not in configured and jrow.active:
            jrow.active = False
            jrow.updated_at = now
            result.jobs_deactivated.append(f"{client_key}/{job_key}")
    if result.changed:
        session.add(AuditRow(
            at=now, actor=actor, action="config.sync", target=str(loaded.path),
            details={
                "clients_added": result.clients_added,
                "clients_deactivated": result.clients_deactivated,
                "jobs_added": result.jobs_added,
                "jobs_deactivated": result.jobs_deactivated,
                "updated": result.updated,
            },
        ))
    session.flush()
    return result


def _apply(row: ClientRow | JobRow, values: dict[str, object], now: datetime) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = now
    return changed


def backdate_jobs(session: Session, when: datetime) -> int:
    """Date every job entered after ``when`` from ``when``: only for simulated nights in the
    past (``hvbackup nights``), whose jobs are expected from the first simulated night.
    Returns how many were changed."""
    changed = 0
    for job in session.scalars(select(JobRow).where(JobRow.created_at > when)):
        job.created_at = job.expected_since = when
        changed += 1
    return changed
