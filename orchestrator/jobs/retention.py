"""Applying a job's retention after a run: restore points outside the policy are forgotten on
every copy, each with its reason in the history. The newest restore point is never forgotten."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.target import is_append_only
from orchestrator.config.load import JobRef, LoadedConfig
from orchestrator.history.models import SnapshotRow
from orchestrator.retention.policy import Decision, SnapshotRef, apply_policy
from orchestrator.store.open import NoRepository, open_for_writing
from orchestrator.store.prune import forget

log = logging.getLogger(__name__)


def apply_retention(loaded: LoadedConfig, ref: JobRef, sessions: sessionmaker[Session],
                    now: datetime, *, dry_run: bool = False,
                    sleep: Callable[[float], None] = time.sleep,
                    maintenance: bool = False,
                    forgetting: dict[str, set[str]] | None = None) -> list[Decision]:
    """Forget what the policy lets go, on every copy, each copy deciding from its own signed
    snapshots (what one baie shows never forgets anything on another; snapshots a baie holds
    that its writer did not sign are never counted, nor forgotten: verify reports them).
    Returns the decisions of the first copy that has a repository (kept ones too). A copy
    reached through an append-only access is left as it is: forgetting is the maintenance's
    (``maintenance``: the central server's, through the baie's maintenance access).
    ``forgetting``: filled with the snapshots forgotten (or, dry, that would be) per baie."""
    decisions: list[Decision] = []
    for baie in loaded.copies_of(ref.client, ref.job):
        try:
            repo = open_for_writing(loaded.repository(ref.client_name, baie), create=False,
                                    sleep=sleep, maintenance=maintenance)
        except NoRepository:
            continue
        if is_append_only(repo.target):
            log.info("%s: retention left to the maintenance (the access is append-only)", baie)
            repo.close()
            continue
        try:
            mine = [s for s in repo.snapshots() if s.meta.get("job") == ref.job_name]
            here = apply_policy([SnapshotRef(s.id, s.time, complete=not s.meta.get("incomplete"),
                                             authenticated=s.authenticated,
                                             run=s.meta.get("run")) for s in mine],
                                ref.job.retention.policy(), now, loaded.config.msp.timezone)
            forgotten = {d.snapshot.id: "; ".join(d.reasons) for d in here if not d.keep}
            forget(repo, [s for s in mine if s.id in forgotten], dry_run=dry_run)
            if forgetting is not None:
                forgetting.setdefault(baie, set()).update(forgotten)
        finally:
            repo.close()
        decisions = decisions or here
        if forgotten and not dry_run:
            with sessions() as session, session.begin():
                for row in session.scalars(select(SnapshotRow).where(
                        SnapshotRow.snapshot_id.in_(list(forgotten)), SnapshotRow.baie == baie,
                        SnapshotRow.forgotten_at.is_(None))):
                    row.forgotten_at = now
                    row.forget_reason = forgotten[row.snapshot_id]
    return decisions
