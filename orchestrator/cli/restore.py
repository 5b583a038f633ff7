"""``hvbackup restore``: files of a restore point back to a folder, every chunk checked."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import Progress, human_bytes
from orchestrator.cli.keys import open_key
from orchestrator.cli.timefmt import snapshot_time
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import HvbError, RepositoryCorrupt, RestoreIncomplete
from orchestrator.history.db import open_engine, session_factory
from orchestrator.history.models import ClientRow, JobRow, SnapshotRow
from orchestrator.store.open import default_baie, open_for_reading
from orchestrator.store.repository import Repository, SnapshotInfo
from orchestrator.store.restore import Restorer, RestoreStats
from orchestrator.store.restorecache import restore_cache


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "restore", help="restore files from a restore point",
        description="Restore a snapshot of CLIENT/JOB (or only --path inside it) under --to. "
                    "Needs the client's key file (or the escrow key) and its passphrase. Files "
                    "already in --to are replaced only with --overwrite (or when confirmed at "
                    "the terminal); a name that would lead outside --to is refused.",
    )
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.add_argument("--snapshot", default="latest", metavar="ID|latest")
    parser.add_argument("--to", required=True, metavar="DIR")
    parser.add_argument("--path", metavar="P", help="restore only this file or folder")
    parser.add_argument("--key-file", required=True, metavar="F")
    parser.add_argument("--baie", metavar="NAME")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files already in --to")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ref = loaded.job(args.job)
    key = open_key(args.key_file)
    baie = default_baie(loaded, ref.client_name, args.baie)
    progress = Progress()
    with restore_cache(loaded.state_dir) as cache:
        repo = open_for_reading(loaded.repository(ref.client_name, baie), key, cache)
        try:
            repo.sync_index()
            info = repo.find_snapshot(args.snapshot, job=ref.job_name)
            if args.snapshot == "latest":
                _check_newest(loaded, ref.client_name, ref.job_name, baie, repo, info)

            def show(stats: RestoreStats) -> None:
                progress.show(stats.bytes, f"{stats.files} file(s), {human_bytes(stats.bytes)}")

            try:
                stats = Restorer(repo, key).restore(info, Path(args.to), only=args.path,
                                                    progress=show,
                                                    overwrite=_overwrite(args, ui))
            except RepositoryCorrupt as exc:
                others = [b for b in loaded.copies_of(ref.client, ref.job) if b != baie]
                if others:
                    exc.message += (f". The other copy may hold it intact: the same command "
                                    f"with --baie {others[0]} (files already restored are "
                                    "kept; add --overwrite to replace them)")
                raise
        finally:
            progress.done()
            repo.close()
    if stats.partials_removed:
        ui.print(f"removed {stats.partials_removed} partial file(s) left in {args.to} by an "
                 "interrupted restore")
    ui.print(f"restored {stats.files} file(s), {human_bytes(stats.bytes)}, from snapshot "
             f"{info.id[:12]} ({snapshot_time(info.meta, loaded.config.msp.timezone)}) of "
             f"{args.job} on {baie} into {args.to}")
    if stats.overwritten:
        ui.print(f"{stats.overwritten} existing file(s) in {args.to} were overwritten")
    for line in trust_notes(repo, [info], args.key_file):
        ui.print(line)
    if stats.refused:
        lines = [f"  {refused.name}: {refused.reason}" for refused in stats.refused]
        raise RestoreIncomplete(f"{len(stats.refused)} file(s) NOT restored: their recorded "
                                f"name would lead outside {args.to}:\n" + "\n".join(lines))
    return 0


def _newest_recorded(loaded: LoadedConfig, client: str, job: str, baie: str
                     ) -> tuple[str, datetime] | None:
    """The newest restore point of ``client/job`` the history records on ``baie`` (not
    forgotten), or None when the history has none or cannot be read (a restore never needs
    it: the check is only skipped)."""
    try:
        engine = open_engine(loaded.database_url)
    except HvbError:
        return None
    try:
        with session_factory(engine)() as session:
            row = session.execute(
                select(SnapshotRow.snapshot_id, SnapshotRow.taken_at)
                .join(JobRow, SnapshotRow.job_id == JobRow.id)
                .join(ClientRow, JobRow.client_id == ClientRow.id)
                .where(ClientRow.key == client, JobRow.key == job, SnapshotRow.baie == baie,
                       SnapshotRow.forgotten_at.is_(None))
                .order_by(SnapshotRow.taken_at.desc()).limit(1)).first()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return (row[0], row[1]) if row else None


def _check_newest(loaded: LoadedConfig, client: str, job: str, baie: str, repo: Repository,
                  found: SnapshotInfo) -> None:
    """``latest`` means the newest point the history recorded: if the baie no longer shows it
    (deleted, damaged, rolled back, refused), an older one is not restored in its place."""
    recorded = _newest_recorded(loaded, client, job, baie)
    if recorded is None:
        return
    snapshot_id, taken_at = recorded
    listed = {s.id for s in repo.snapshots() if s.meta.get("job") == job}
    if snapshot_id in listed or snapshot_id == found.id:
        return
    tz = loaded.config.msp.timezone
    when = (taken_at if taken_at.tzinfo else taken_at.replace(tzinfo=UTC)).astimezone(tz)
    raise RepositoryCorrupt(
        f"{baie}: the newest restore point of {client}/{job}, {snapshot_id[:12]} of "
        f"{when:%d/%m/%Y %H:%M}, is not readable on this baie (missing, damaged or refused: "
        f"'hvbackup verify' says which); the newest one here is {found.id[:12]} "
        f"({snapshot_time(found.meta, tz)}). Restore the newest from the other baie (--baie), "
        f"or this older one by naming it (--snapshot {found.id[:12]})")


def trust_notes(repo: Repository, snapshots: list[SnapshotInfo], key_file: str) -> list[str]:
    """What is not proven about these snapshots, said plainly (empty when all is)."""
    notes = []
    if not repo.writer_proven:
        notes.append(f"WARNING: {key_file} records no orchestrator signing key, so nothing "
                     "proves who wrote this repository; run 'hvbackup keys check' once to "
                     "record it")
    old = [s for s in snapshots if not s.authenticated]
    if old:
        notes.append(f"note: {len(old)} snapshot(s) written before snapshots were signed "
                     f"(not authenticated): {', '.join(s.id[:12] for s in old[:10])}")
    return notes


def _overwrite(args: argparse.Namespace, ui: Ui) -> bool | Callable[[list[str]], bool]:
    """--overwrite: yes; at a terminal: ask; otherwise no (the restore stops, naming them)."""
    if args.overwrite:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False

    def ask(existing: list[str]) -> bool:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        print(f"{len(existing)} file(s) already exist in {args.to} ({shown}). "
              "Overwrite them? [y/N] ", end="", file=ui.err, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes", "o", "oui")

    return ask
