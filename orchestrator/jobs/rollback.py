"""Rollback and planted snapshots: the history against what a baie lists.

The history catalogues every snapshot a run committed, per baie, and marks those retention
forgot. A baie that no longer lists one it should hold (deleted, or the repository put back
to an older state) or lists one no run of this orchestrator committed is an alert: a baie can
withhold the newest restore point, but not without this being noticed at the next backup,
at ``hvbackup verify`` and on the dashboard. Names only: one listing per baie, nothing read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.baie.target import Target
from orchestrator.findings import Finding, SnapshotMissing, SnapshotUnknown
from orchestrator.history.models import ClientRow, JobRow, RunRow, RunState, SnapshotRow
from orchestrator.store.names import content_id

SHOWN = 10  # ids named in a message; the count says the rest


@dataclass
class HistoryGaps:
    baie: str
    missing: list[str] = field(default_factory=list)  # "id (job, time)", committed, not there
    unknown: list[str] = field(default_factory=list)  # ids there, never committed
    deferred: bool = False  # another run of the client was in progress: judged next time

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        if self.missing:
            out.append(SnapshotMissing(self.baie, "HVB-SNAPSHOT-MISSING", (
                f"{len(self.missing)} restore point(s) the history committed are gone from "
                f"baie {self.baie} (deleted, or the repository was put back to an older "
                f"state): {', '.join(self.missing[:SHOWN])}")))
        if self.unknown:
            out.append(SnapshotUnknown(self.baie, "HVB-SNAPSHOT-UNKNOWN", (
                f"{len(self.unknown)} snapshot file(s) on baie {self.baie} were never "
                f"committed by this orchestrator: {', '.join(self.unknown[:SHOWN])}")))
        return out


def listed(target: Target) -> set[str]:
    """The snapshot ids a baie lists (names only). A file that is not the repository's
    (``.DS_Store``: store/names.py) is no snapshot, planted or not: it is left out."""
    return {e.name.rsplit("/", 1)[-1] for e in target.list("snapshots")
            if content_id("snapshots", e.name) is not None}


def others_in_progress(session: Session, client: str, current_run: str | None) -> set[str]:
    """The uids of the client's runs claimed or running, but ``current_run``."""
    return set(session.scalars(
        select(RunRow.uid).join(JobRow, RunRow.job_id == JobRow.id)
        .join(ClientRow, JobRow.client_id == ClientRow.id)
        .where(ClientRow.key == client, RunRow.uid != (current_run or ""), RunRow.state.in_(
            [RunState.CLAIMED.value, RunState.RUNNING.value]))))


def compare(session: Session, client: str, baie: str, present: Iterable[str],
            current_run: str | None = None) -> HistoryGaps:
    """What ``baie`` lists (``present``, snapshot ids) against what the history committed for
    ``client``: every snapshot committed on that baie and not forgotten must be there; every
    one there must have been committed (on any baie: a later copy brings earlier points).

    While another run of the client is in progress (``current_run`` is the asking run), its
    snapshot may be on the baie and not yet in the history, and its retention may have
    deleted a file it has not yet marked forgotten: nothing is judged then; the next backup or
    ``hvbackup verify`` judges it."""
    if others_in_progress(session, client, current_run):
        return HistoryGaps(baie, deferred=True)
    there = set(present)
    rows = session.execute(
        select(SnapshotRow.snapshot_id, SnapshotRow.baie, SnapshotRow.forgotten_at,
               SnapshotRow.taken_at, JobRow.key)
        .join(ClientRow, SnapshotRow.client_id == ClientRow.id)
        .join(JobRow, SnapshotRow.job_id == JobRow.id)
        .where(ClientRow.key == client)
        .order_by(SnapshotRow.taken_at.desc())).all()
    known = {r.snapshot_id for r in rows}
    gaps = HistoryGaps(baie)
    gaps.missing = [f"{r.snapshot_id[:12]} ({r.key}, {r.taken_at:%Y-%m-%d %H:%M})"
                    for r in rows if r.baie == baie and r.forgotten_at is None
                    and r.snapshot_id not in there]
    gaps.unknown = sorted(i[:12] for i in there - known)
    return gaps
