"""``hvbackup host check``: is a client's host ready for its jobs? (see hosts/check.py)"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.hosts.check import FAIL, WARN, check_host
from orchestrator.hosts.open import open_host

EXIT_NOT_READY = 1


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("host", help="onboarding checks of a host")
    actions = parser.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="say what a host lacks for its jobs",
        description="Connect to CLIENT/HOST as backups do and say, for each thing its jobs "
                    "need, whether it is there: the WinRM listener, certificate, account and "
                    "JEA endpoint, each VM and its VSS integration service, the SQL instances "
                    "and databases, free space for staging, leftovers of interrupted runs. "
                    "--trial also takes and merges a checkpoint of each VM and makes, verifies "
                    "and removes a dump of each database (outside production hours). Exit "
                    "status 1 when something is missing.")
    add_config_argument(check)
    check.add_argument("host", metavar="CLIENT/HOST")
    check.add_argument("--trial", action="store_true",
                       help="also do what a backup does (checkpoints, dumps), then undo it")
    check.add_argument("--slow-after", type=float, default=10.0, metavar="SECONDS",
                       help="warn when the host takes longer to answer (default 10)")
    check.add_argument("--json", action="store_true", help="verdicts as JSON")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    open_host(loaded.host(args.host), clock).close()  # an unknown CLIENT/HOST is said at once
    verdicts = check_host(loaded, args.host, lambda: open_host(loaded.host(args.host), clock),
                          trial=args.trial, slow_s=args.slow_after)
    failed = any(v.level == FAIL for v in verdicts)
    if args.json:
        ui.print(json.dumps({"host": args.host, "ready": not failed,
                             "verdicts": [asdict(v) for v in verdicts]}, indent=2,
                            ensure_ascii=False))
    else:
        width = max(len(v.topic) for v in verdicts)
        for v in verdicts:
            ui.print(f"{v.level:<7}  {v.topic:<{width}}  {v.text}")
        warnings = sum(v.level == WARN for v in verdicts)
        ui.print(f"{args.host}: " + ("NOT READY" if failed else "ready")
                 + (f" ({warnings} warning(s))" if warnings else ""))
    return EXIT_NOT_READY if failed else 0
