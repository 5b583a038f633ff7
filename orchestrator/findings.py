"""What a run found: typed data, never raised, from which its status, alerts and sentences come.

An error (``errors.py``) stops what raised it; a finding is what the run keeps of it, or of
anything else worth telling, once the run goes on. Each kind is a class with fixed traits;
each instance carries the object, the codes and the hotline's message::

    Finding                          severity    alert    status it gives the run
    ├── RunFailed                    failure     echec    ECHEC: the run could not happen
    ├── ObjectFailed                 failure     echec    ECHEC: a VM, database or folder
    │                                                     has no restore point tonight
    ├── Interrupted                  failure     echec    ECHEC: the orchestrator stopped
    ├── Missed                       missed      non_executee   NON EXECUTEE
    ├── StoppedAfterSnapshot         warning     -        AVERTISSEMENT: the point is saved
    ├── CrashConsistent              warning     -        AVERTISSEMENT
    ├── CheckpointNotMerged          warning     -        AVERTISSEMENT
    ├── FilesUnreadable              warning     -        AVERTISSEMENT: files of a folder
    │                                                     the account may not read (NTFS)
    ├── CopyFailed                   warning     copy     AVERTISSEMENT
    ├── CopyIncomplete               warning     copy     AVERTISSEMENT
    ├── BaieDamaged                  warning     -        AVERTISSEMENT: the point is saved
    │                                                     whole; damage found on the baie
    │                                                     was left out, re-sent or copied
    │                                                     back (HVB-STORE-CORRUPT)
    ├── RetentionFailed              warning     -        AVERTISSEMENT
    ├── SnapshotMissing              warning     rollback AVERTISSEMENT: a committed restore
    │                                                     point is gone from a baie
    ├── SnapshotUnknown              warning     rollback AVERTISSEMENT: a baie holds a
    │                                                     snapshot no run committed
    └── BaieUnprotected              warning     unprotected  AVERTISSEMENT: the writer's
                                                          append-only account could destroy
                                                          the canary file (baie/canary.py)

Nothing downstream reads a message to decide anything: the status comes from
:func:`status_of`, the alert from ``alert``, the runbook from ``code`` and ``script_code``, and
the client's sentence from ``key`` (``reports/<language>/outcomes.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from orchestrator.errors import HvbError, ScriptFailed


class RunStatus(StrEnum):
    """Final status of a run, as clients and the hotline read it."""

    REUSSIE = "REUSSIE"
    AVERTISSEMENT = "AVERTISSEMENT"
    ECHEC = "ECHEC"
    NON_EXECUTEE = "NON EXECUTEE"

    @property
    def rank(self) -> int:
        """Worst first: ECHEC 0, NON EXECUTEE 1, AVERTISSEMENT 2, REUSSIE 3."""
        return _RANK[self]

    @property
    def succeeded(self) -> bool:
        """A restore point was made (REUSSIE or AVERTISSEMENT)."""
        return self in (RunStatus.REUSSIE, RunStatus.AVERTISSEMENT)


_RANK = {RunStatus.ECHEC: 0, RunStatus.NON_EXECUTEE: 1, RunStatus.AVERTISSEMENT: 2,
         RunStatus.REUSSIE: 3}
SUCCEEDED = (RunStatus.REUSSIE.value, RunStatus.AVERTISSEMENT.value)


def worst(statuses: list[RunStatus], default: RunStatus) -> RunStatus:
    return min(statuses, key=lambda s: s.rank, default=default)


class Severity(IntEnum):
    WARNING = 1
    FAILURE = 2
    MISSED = 3


class AlertKind(StrEnum):
    """What the hotline is alerted of (``alerts.kind`` in the history): a run's (from its
    findings), a client's (its quota, its report) or a site agent's (silent)."""

    ECHEC = "echec"
    NON_EXECUTEE = "non_executee"
    COPY = "copy"
    QUOTA_WARNING = "quota_warning"  # 10 % over the subscribed volume: 30 days to act
    QUOTA_BLOCKED = "quota_blocked"  # still over 30 days later: backups stopped
    QUOTA_TIER = "quota_tier"  # still over 30 days later: moved up a tier (next_tier contracts)
    REPORT_MISSING = "report_missing"  # the client's report did not go out by its deadline
    ROLLBACK = "rollback"  # a baie lacks a committed snapshot, or holds one never committed
    AGENT_SILENT = "agent_silent"  # a site agent silent past its site's heartbeat_minutes
    UNPROTECTED = "baie_unprotected"  # an append-only access let the canary be destroyed

    @property
    def is_quota(self) -> bool:
        return self in (AlertKind.QUOTA_WARNING, AlertKind.QUOTA_BLOCKED, AlertKind.QUOTA_TIER)


@dataclass(frozen=True)
class Finding:
    """One thing a run found. ``object`` is the VM, database, folder or baie concerned (None
    for the run as a whole); ``code`` an ``HVB-...`` error code (it names the runbook);
    ``script_code`` the host script's own code when a script reported the problem; ``message``
    the technical sentence for the hotline (English, may name hosts and paths)."""

    kind: ClassVar[str] = "finding"
    severity: ClassVar[Severity] = Severity.WARNING
    alert: ClassVar[AlertKind | None] = None

    object: str | None
    code: str
    message: str
    script_code: str | None = None

    @property
    def key(self) -> str:
        """The client's sentence for it (one per kind, in reports/<language>/outcomes.yaml)."""
        return self.kind

    @property
    def headline(self) -> str:
        return f"{self.object}: {self.message}" if self.object else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "object": self.object, "code": self.code,
                "script_code": self.script_code, "message": self.message}

    @classmethod
    def of(cls, exc: HvbError, obj: str | None = None) -> Finding:
        """This kind of finding, from the error that caused it."""
        script = exc.script_code if isinstance(exc, ScriptFailed) else None
        return cls(obj, exc.code, exc.message, script)


class RunFailed(Finding):
    kind, severity, alert = "run_failed", Severity.FAILURE, AlertKind.ECHEC


class ObjectFailed(Finding):
    kind, severity, alert = "object_failed", Severity.FAILURE, AlertKind.ECHEC


class Interrupted(Finding):
    kind, severity, alert = "interrupted", Severity.FAILURE, AlertKind.ECHEC


class Missed(Finding):
    kind, severity, alert = "missed", Severity.MISSED, AlertKind.NON_EXECUTEE


class StoppedAfterSnapshot(Finding):
    kind = "stopped_after_snapshot"


class CrashConsistent(Finding):
    kind = "crash_consistent"


class CheckpointNotMerged(Finding):
    kind = "checkpoint_not_merged"


class FilesUnreadable(Finding):
    """Files (or sub-folders) of a folder that the reading account may not read, their NTFS
    ACL refusing it: the folder's restore point has everything else; ``message`` names them."""

    kind = "files_unreadable"


class CopyFailed(Finding):
    kind, alert = "copy_failed", AlertKind.COPY


class CopyIncomplete(Finding):
    kind, alert = "copy_incomplete", AlertKind.COPY


class RetentionFailed(Finding):
    kind = "retention_failed"


class BaieDamaged(Finding):
    """Before the backup, files of the repository were found missing or damaged on the baie
    (store/health.py); tonight's point does not count on them, and is whole. A warning, not a
    success: a baie that loses or changes files needs a person (disks, tampering), and older
    restore points may have lost what only those files held."""

    kind = "baie_damaged"


class SnapshotMissing(Finding):
    kind, alert = "snapshot_missing", AlertKind.ROLLBACK


class SnapshotUnknown(Finding):
    kind, alert = "snapshot_unknown", AlertKind.ROLLBACK


class BaieUnprotected(Finding):
    """The canary (baie/canary.py): the baie let the writer's account, meant to be
    append-only, remove, overwrite or rename a file. The point is saved; but whoever holds
    that account (a site agent's machine) could erase the copies on that baie."""

    kind, alert = "baie_unprotected", AlertKind.UNPROTECTED


KINDS: dict[str, type[Finding]] = {
    cls.kind: cls for cls in (RunFailed, ObjectFailed, Interrupted, Missed, StoppedAfterSnapshot,
                              CrashConsistent, CheckpointNotMerged, FilesUnreadable, CopyFailed,
                              CopyIncomplete, RetentionFailed, BaieDamaged, SnapshotMissing,
                              SnapshotUnknown, BaieUnprotected)
}


def from_dict(data: dict[str, Any]) -> Finding:
    """A finding as the history stores it; an unknown kind (written by a newer version) is
    read as a plain warning rather than lost."""
    cls = KINDS.get(str(data.get("kind")), Finding)
    return cls(data.get("object"), str(data.get("code") or "HVB-ERROR"),
               str(data.get("message") or ""), data.get("script_code"))


def status_of(findings: list[Finding]) -> RunStatus:
    """The run's status, from its findings alone."""
    severities = {f.severity for f in findings}
    if Severity.MISSED in severities:
        return RunStatus.NON_EXECUTEE
    if Severity.FAILURE in severities:
        return RunStatus.ECHEC
    if Severity.WARNING in severities:
        return RunStatus.AVERTISSEMENT
    return RunStatus.REUSSIE


def headline(findings: list[Finding]) -> Finding | None:
    """What the run is summed up by: its first failure, else its first warning."""
    return max(findings, key=lambda f: f.severity, default=None)
