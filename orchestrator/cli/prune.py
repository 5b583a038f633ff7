"""``hvbackup prune``: apply retention to every job, then free what nothing references."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.jobs.maintenance import prune_client


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


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    clients = [args.client] if args.client else list(loaded.config.clients)
    for name in clients:
        if name not in loaded.config.clients:
            raise UsageError(f"no client {name!r} in {loaded.path}")
    ctx = context(loaded, clock)
    for name in clients:
        done = prune_client(ctx, name, clock.now(), dry_run=args.dry_run)
        verb = "would forget" if args.dry_run else "forgot"
        ui.print(f"{name}: {verb} {done.forgotten} restore point(s)")
        for baie, report in done.baies.items():
            ui.print(f"  {baie}: {report.snapshots} restore point(s) kept, "
                     f"{len(report.packs_deleted)} pack(s) "
                     f"{'would be ' if args.dry_run else ''}deleted, "
                     f"{human_bytes(report.bytes_freed)} freed, {report.packs_kept} kept")
    return 0
