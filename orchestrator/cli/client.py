"""``hvbackup client offboard``: end of contract (backups stop, data destroyed 30 days later)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.jobs.offboard import DESTROY_AFTER, destroy_due, inventory, schedule_offboard


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("client", help="a client's contract")
    actions = parser.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    off = actions.add_parser(
        "offboard", help="end a client's contract",
        description="From --on (today or later), no backup runs for CLIENT; 30 days later the "
                    "scheduler destroys its data on every baie (audited), announced in the "
                    "hotline's morning summary the 7 days before. Run it again with a later "
                    "date to postpone. --dry-run shows what would go.",
    )
    add_config_argument(off)
    off.add_argument("client", metavar="CLIENT")
    off.add_argument("--on", required=True, metavar="YYYY-MM-DD")
    off.add_argument("--dry-run", action="store_true")
    off.set_defaults(handler=run_offboard)
    destroy = actions.add_parser(
        "destroy-due", help="destroy the data whose 30 days after contract end have passed",
        description="What the scheduler does every day; run by hand to see or do it now.",
    )
    add_config_argument(destroy)
    destroy.add_argument("--dry-run", action="store_true")
    destroy.set_defaults(handler=run_destroy)


def run_offboard(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    if args.client not in loaded.config.clients:
        raise UsageError(f"no client {args.client!r} in {loaded.path}")
    try:
        on = date.fromisoformat(args.on)
    except ValueError:
        raise UsageError(f"--on {args.on!r} is not a date (YYYY-MM-DD)") from None
    tz = loaded.config.msp.timezone
    today = clock.now().astimezone(tz).date()
    if on < today:
        raise UsageError(f"--on {args.on} is in the past (today is {today.isoformat()}): "
                         "backups stop on a day to come, and the data is destroyed 30 days "
                         f"after it; to stop them today, give --on {today.isoformat()}")
    found = inventory(loaded, args.client)
    if args.dry_run:
        ui.print(f"dry run: backups of {args.client} would stop on {on:%d/%m/%Y}; on "
                 f"{on + DESTROY_AFTER:%d/%m/%Y} this would be destroyed:")
    else:
        ctx = context(loaded, clock)
        destroy_on = schedule_offboard(ctx.sessions, args.client, on, actor(), clock.now(), tz)
        ui.print(f"backups of {args.client} stop on {on:%d/%m/%Y}; its data will be destroyed "
                 f"on {destroy_on:%d/%m/%Y}:")
    for item in found:
        ui.print(f"  {item.baie}: {item.files} file(s), {human_bytes(item.bytes)}")
    return 0


def run_destroy(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ctx = context(loaded, clock)
    done = destroy_due(loaded, ctx.sessions, clock.now(), actor(), dry_run=args.dry_run)
    if not done:
        ui.print("nothing to destroy")
    for item in done:
        ui.print(f"{'would destroy' if args.dry_run else 'destroyed'} {item.client} on "
                 f"{item.baie}: {item.files} file(s), {human_bytes(item.bytes)}")
    return 0
