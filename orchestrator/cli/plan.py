"""``hvbackup plan``: each job's next runs and how many restore points retention keeps."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.timefmt import age_str, local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.retention.forecast import forecast_retention
from orchestrator.schedule.spec import runs_between


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan", help="show each job's next runs and the restore points retention keeps",
        description="For every job: the runs due in the next DAYS days (MSP timezone) and the "
                    "number of restore points its retention keeps once established.",
    )
    add_config_argument(parser)
    parser.add_argument("--days", type=int, default=7, metavar="N",
                        help="how many days ahead to list (default 7)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    if not 1 <= args.days <= 366:
        raise UsageError(f"--days must be between 1 and 366, got {args.days}")
    loaded = load_from_args(args)
    tz = loaded.config.msp.timezone
    now = clock.now()
    end = now + timedelta(days=args.days)
    ui.print(f"Plan for the next {args.days} days, times in {tz.key}:")
    total_runs = 0
    for ref in loaded.jobs():
        job = ref.job
        ui.print()
        copies = " + ".join(loaded.copies_of(ref.client, job))
        ui.print(f"{ref.label}: {job.type} on {job.host}, {job.schedule.describe()}, "
                 f"window {job.window_hours:g} h, copies {copies}")
        if not job.enabled:
            ui.print("  disabled: no runs")
            continue
        runs = list(runs_between(job.schedule, tz, now, end))
        total_runs += len(runs)
        ui.print(f"  {len(runs)} run(s):" + ("" if runs else " none in this period"))
        for start in range(0, len(runs), 4):
            ui.print("    " + ", ".join(local_str(r, tz) for r in runs[start:start + 4]))
        policy = job.retention.policy()
        forecast = forecast_retention(job.schedule, policy, tz, end)
        ui.print(f"  retention {policy.describe()}: {forecast.points} restore points, the "
                 f"oldest {age_str(forecast.oldest_age)} old")
    ui.print()
    ui.print(f"{total_runs} runs in the next {args.days} days.")
    return 0
