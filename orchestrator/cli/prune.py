"""``hvbackup prune``: apply retention to every job, then free what nothing references."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.backup import context
from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError
from orchestrator.jobs.retention import apply_retention
from orchestrator.store.open import NoRepository, open_for_writing
from orchestrator.store.prune import PruneReport, prune


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "prune", help="forget restore points outside retention and free the space",
        description="For every job (or one client's): forget the restore points its retention "
                    "lets go, on every copy; then delete the packs no restore point references "
                    "(waiting for running backups to finish). --dry-run shows what would go.",
    )
    add_config_argument(parser)
    parser.add_argument("--client", metavar="CLIENT")
    parser.add_argument("--dry-run", action="store_true")
    parser.set_defaults(handler=run)


def prune_client(loaded: LoadedConfig, client: str, ctx: Any, now: Any, *,
                 dry_run: bool) -> tuple[int, dict[str, PruneReport]]:
    forgotten = 0
    baies: list[str] = []
    for ref in loaded.jobs():
        if ref.client_name != client:
            continue
        decisions = apply_retention(loaded, ref, ctx.sessions, now, dry_run=dry_run)
        forgotten += sum(not d.keep for d in decisions)
        baies += [b for b in loaded.copies_of(ref.client, ref.job) if b not in baies]
    reports = {}
    for baie in baies:
        try:
            repo = open_for_writing(loaded, client, baie, create=False)
        except NoRepository:
            continue
        try:
            reports[baie] = prune(repo, dry_run=dry_run)
        finally:
            repo.close()
    return forgotten, reports


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    clients = [args.client] if args.client else list(loaded.config.clients)
    for name in clients:
        if name not in loaded.config.clients:
            raise UsageError(f"no client {name!r} in {loaded.path}")
    ctx = context(loaded, clock)
    for name in clients:
        forgotten, reports = prune_client(loaded, name, ctx, clock.now(), dry_run=args.dry_run)
        verb = "would forget" if args.dry_run else "forgot"
        ui.print(f"{name}: {verb} {forgotten} restore point(s)")
        for baie, report in reports.items():
            ui.print(f"  {baie}: {report.snapshots} restore point(s) kept, "
                     f"{len(report.packs_deleted)} pack(s) "
                     f"{'would be ' if args.dry_run else ''}deleted, "
                     f"{human_bytes(report.bytes_freed)} freed, {report.packs_kept} kept")
    return 0
