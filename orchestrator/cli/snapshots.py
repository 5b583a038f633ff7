"""``hvbackup snapshots``: a job's restore points on a baie (no client key needed)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ref = loaded.job(args.job)
    baie = default_baie(loaded, ref.client_name, args.baie)
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
