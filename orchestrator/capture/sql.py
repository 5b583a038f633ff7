"""SQL Server: native COPY_ONLY backups verified on the host -> .bak files read -> staging
deleted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orchestrator.capture import Exposed
from orchestrator.config.models import SqlServerJob
from orchestrator.findings import Finding, ObjectFailed
from orchestrator.history.recorder import RunRecorder
from orchestrator.hosts.session import HostSession

# Why `databases: all` left a database out (Invoke-HvbSqlBackup.ps1, 'skipped').
LEFT_OUT = {
    "system": "a system database (name it in databases: to back it up)",
    "snapshot": "a database snapshot, which cannot be backed up",
    "standby": "in standby (read-only between log restores), which cannot be backed up",
    "not_online": "{state}, not ONLINE: it cannot be backed up until it is brought online",
    "read_only": "read-only, and the hvbackup login has no user in it to back it up (see "
                 "DB_READ_ONLY)",
    "excluded": "in exclude_databases",
}


@dataclass
class SqlCapture:
    exposed: list[Exposed]
    findings: list[Finding] = field(default_factory=list)  # a database without its dump


def backup_timeout_s(command_timeout_s: int, databases: int) -> int:
    """How long one Invoke-HvbSqlBackup call may take: each database runs two statements
    (BACKUP, RESTORE VERIFYONLY), each bounded by the job's command timeout, plus ten minutes
    for connecting and listing."""
    return 2 * command_timeout_s * max(1, databases) + 600


@contextmanager
def native_backups(host: HostSession, recorder: RunRecorder, job: SqlServerJob, run_uid: str,
                   staging: str) -> Iterator[SqlCapture]:
    try:
        with recorder.step("sql backup", job.instance) as figures:
            params: dict[str, Any] = dict(
                Instance=job.instance, Database=list(job.databases),
                ExcludeDatabase=list(job.exclude_databases), StagingPath=staging, RunId=run_uid,
                Compression=job.backup_compression,
                TrustServerCertificate=job.trust_server_certificate,
                CommandTimeoutSeconds=job.command_timeout_s)
            count = len(job.databases)
            if any(d.lower() == "all" for d in job.databases):
                # 'all' stands for as many databases as the instance holds tonight: the dry
                # run lists them (one catalog query) so the timeout grows with them.
                listed = host.run("Invoke-HvbSqlBackup", **params, DryRun=True,
                                  timeout_s=backup_timeout_s(job.command_timeout_s, 0))
                count = len(listed["planned"])
            result = host.run("Invoke-HvbSqlBackup", **params,
                              timeout_s=backup_timeout_s(job.command_timeout_s, count))
            figures.details = {"databases": [{k: d[k] for k in ("name", "size_bytes",
                                                                "verified", "compressed")}
                                             for d in result["databases"]],
                               "skipped": result.get("skipped", [])}
        # databases: all leaves some out, each for a reason the run log keeps.
        for left in result.get("skipped", []):
            recorder.event("WARNING" if left["reason"] == "not_online" else "INFO",
                           f"{job.instance}\\{left['name']} left out of 'all': "
                           + LEFT_OUT[left["reason"]].format(state=left["state"]))
        # .get: a host whose scripts predate backup_compression does not say; its dumps stay as
        # they were (compressed where the edition can) until the host is onboarded again.
        if result.get("compression_requested") and not result["compression"]:
            recorder.event("WARNING", f"{job.instance} ({result['edition']}) cannot compress "
                           "backups: the dumps were made uncompressed (backup_compression)")
        capture = SqlCapture([])
        for db in result["databases"]:
            if db["error"]:
                capture.findings.append(ObjectFailed(db["name"], "HVB-SCRIPT-FAILED",
                                                     db["error"]["message"],
                                                     db["error"]["code"]))
                recorder.event("ERROR", f"{db['name']}: {db['error']['message']}")
            else:
                shown = f"{job.instance}\\{db['name']}.bak"
                # Read through the run's share of the staging folder (databases[].exposed);
                # a host whose scripts predate it gives the drive path.
                capture.exposed.append(Exposed(db.get("exposed") or db["file"], shown,
                                               db["name"]))
        yield capture
    finally:
        with recorder.step("remove staging", job.instance):
            host.run("Remove-HvbStaging", StagingPath=staging, RunId=run_uid)
