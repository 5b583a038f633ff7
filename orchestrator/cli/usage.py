"""``hvbackup usage``: a month of usage per client, for invoicing (table, CSV or JSON)."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.jobs.usage import baies_or_none, month_usage, parse_month, to_csv


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "usage", help="a month of usage per client, for invoicing",
        description="Per client for MONTH (default: last month): the subscribed volume and its "
                    "tier moves, the peak and the end-of-month volume stored on each baie, the "
                    "runs by status. From the history.",
    )
    add_config_argument(parser)
    parser.add_argument("--month", metavar="YYYY-MM")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--csv", action="store_true", help="CSV on standard output")
    shape.add_argument("--json", action="store_true", help="JSON on standard output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    tz = loaded.config.msp.timezone
    if args.month:
        try:
            month = parse_month(args.month)
        except ValueError as exc:
            raise UsageError(f"--month: {exc}") from None
    else:
        month = (clock.now().astimezone(tz).date().replace(day=1) - timedelta(days=1)).replace(
            day=1)
    ctx = context(loaded, clock)
    with ctx.sessions() as session:
        rows = month_usage(session, month, tz)
    if args.csv:
        ui.print(to_csv(rows, month).rstrip("\n"))
        return 0
    if args.json:
        ui.print(json.dumps({"month": f"{month:%Y-%m}", "clients": [r.to_dict() for r in rows]},
                            indent=1, ensure_ascii=False))
        return 0
    table = []
    for row in rows:
        subscribed = "-" if row.subscribed_end is None else human_bytes(row.subscribed_end)
        if row.tier_moves:
            subscribed += " (moved " + ", ".join(
                f"{m.decided_at.astimezone(tz):%d/%m} from {human_bytes(m.from_bytes)}"
                for m in row.tier_moves) + ")"
        runs = " ".join(f"{status}={count}" for status, count in row.runs.items() if count)
        for baie in baies_or_none(row.baies):
            table.append([row.client, subscribed, baie.baie if baie else "-",
                          human_bytes(baie.peak_bytes) if baie else "-",
                          human_bytes(baie.end_bytes) if baie else "-", runs or "-"])
    ui.print(f"usage of {month:%m/%Y}")
    ui.table(["CLIENT", "SUBSCRIBED", "BAIE", "PEAK", "END OF MONTH", "RUNS"], table)
    return 0

