"""``hvbackup validate``: check a configuration and summarise it."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.schedule.spec import next_runs


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate", help="check a configuration file and summarise it",
        description="Check every rule of the configuration and list clients, hosts and jobs "
                    "with each job's next run. Exit status 2 if anything is wrong.",
    )
    add_config_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    if args.quiet:
        return 0
    cfg = loaded.config
    tz = cfg.msp.timezone
    hosts = sum(len(c.hosts) for c in cfg.clients.values())
    jobs = list(loaded.jobs())
    ui.print(f"{args.config or loaded.path}: valid — {len(cfg.clients)} clients, {hosts} hosts, "
             f"{len(jobs)} jobs, {len(cfg.baies)} baies")
    ui.print()
    now = clock.now()
    rows = []
    for ref in jobs:
        job = ref.job
        nxt = local_str(next_runs(job.schedule, tz, now, 1)[0], tz) if job.enabled else "disabled"
        rows.append([ref.label, job.type, job.host, job.schedule.describe(), nxt,
                     ", ".join(loaded.copies_of(ref.client, job))])
    ui.table(["CLIENT/JOB", "TYPE", "HOST", "SCHEDULE", f"NEXT RUN ({tz.key})", "COPIES"], rows)
    for name, client in cfg.clients.items():
        if not client.jobs:
            ui.print(f"client {name} has no jobs")
    if loaded.warnings:
        ui.print()
        ui.print(f"{len(loaded.warnings)} warning(s):")
        for warning in loaded.warnings:
            ui.print(f"  {warning}")
    return 0
