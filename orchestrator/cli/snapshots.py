"""``hvbackup snapshots``: a job's restore points on a baie (no client key needed)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import select

from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError
from orchestrator.history.models import AuditRow, ClientRow, JobRow, SnapshotRow
from orchestrator.store.open import default_baie, open_for_writing


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "snapshots", help="list a job's restore points",
        description="List the restore points of CLIENT/JOB on a baie (the first copy by "
                    "default): when, from which run, how much. File names stay sealed.",
    )
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.add_argument("--baie", metavar="NAME")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mark-lost", metavar="ID",
                        help="a restore point the history recorded and the baie no longer "
                             "has (alert HVB-SNAPSHOT-MISSING), known to be lost: recorded as "
                             "such, so later runs stop reporting it (needs --reason)")
    parser.add_argument("--reason", metavar="TEXT", help="why it is lost, for the audit log")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ref = loaded.job(args.job)
    baie = default_baie(loaded, ref.client_name, args.baie)
    if args.mark_lost is not None or args.reason is not None:
        return _mark_lost(args, loaded, ref.client_name, ref.job_name, baie, clock, ui)
    repo = open_for_writing(loaded.repository(ref.client_name, baie), create=False)
    try:
        snaps = [s for s in repo.snapshots() if s.meta.get("job") == ref.job_name]
        damaged = repo.damaged_snapshots()
        refused = dict(repo.refused)
    finally:
        repo.close()
    for name, what in sorted(damaged.items()):  # whose job it was cannot be read: all shown
        ui.warn(f"skipped {name}: {what}; see runbook HVB-STORE-CORRUPT")
    for name, why in sorted(refused.items()):
        ui.warn(f"skipped {name}, refused (not signed by this client's orchestrator): {why}; "
                "see runbook HVB-SNAPSHOT-UNKNOWN")
    if args.json:
        ui.print(json.dumps([{"id": s.id, **s.meta} for s in snaps], indent=2))
        return 0
    tz = loaded.config.msp.timezone
    ui.print(f"{args.job} on {baie}: {len(snaps)} restore point(s)")
    if snaps:
        ui.print()
        ui.table(["ID", "TIME", "RUN", "FILES", "SIZE", "NEW"],
                 [[s.id[:12], local_str(s.time, tz), str(s.meta.get("run", "")),
                   str(s.meta["files"]), human_bytes(s.meta["bytes"]),
                   human_bytes(s.meta.get("bytes_new", 0))] for s in snaps])
    return 0


def _mark_lost(args: argparse.Namespace, loaded: LoadedConfig, client: str, job: str,
               baie: str, clock: Clock, ui: Ui) -> int:
    """Record that a restore point gone from ``baie`` is known lost (the history keeps it,
    marked, with who and why): the rollback check stops reporting it at every run."""
    if not args.mark_lost or not (args.reason or "").strip():
        raise UsageError("--mark-lost ID needs --reason TEXT (kept in the audit log), and "
                         "--reason goes with --mark-lost")
    wanted = args.mark_lost.strip().lower()
    if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
        raise UsageError(f"--mark-lost {args.mark_lost!r}: give at least the first 8 "
                         "characters of the restore point's id, as the alert names it")
    ctx = context(loaded, clock)
    with ctx.sessions() as session:
        rows = session.scalars(
            select(SnapshotRow).join(JobRow, SnapshotRow.job_id == JobRow.id)
            .join(ClientRow, JobRow.client_id == ClientRow.id)
            .where(ClientRow.key == client, JobRow.key == job, SnapshotRow.baie == baie,
                   SnapshotRow.forgotten_at.is_(None),
                   SnapshotRow.snapshot_id.startswith(wanted))).all()
    if len(rows) != 1:
        raise UsageError(f"{'no' if not rows else 'several'} restore point(s) of {client}/{job} "
                         f"recorded on {baie} and not forgotten match {wanted!r}")
    row = rows[0]
    repo = open_for_writing(loaded.repository(client, baie), create=False)
    try:
        still = {s.id for s in repo.snapshots()}
    finally:
        repo.close()
        repo.target.close()
    if row.snapshot_id in still:
        raise UsageError(f"restore point {row.snapshot_id[:12]} is on {baie}, readable: it is "
                         "not lost (nothing marked)")
    now = clock.now()
    who = actor()
    with ctx.sessions() as session, session.begin():
        marked = session.get(SnapshotRow, row.id)
        assert marked is not None
        marked.forgotten_at = now
        marked.forget_reason = f"lost ({who}): {args.reason.strip()}"[:1000]
        session.add(AuditRow(at=now, actor=who, action="snapshot.lost",
                             target=f"{client}/{job}@{baie}",
                             details={"snapshot": row.snapshot_id,
                                      "reason": args.reason.strip()[:1000]}))
    tz = loaded.config.msp.timezone
    ui.print(f"restore point {row.snapshot_id[:12]} of {client}/{job} "
             f"({local_str(row.taken_at, tz)}) recorded as lost on {baie}; later runs no "
             "longer report it")
    return 0
