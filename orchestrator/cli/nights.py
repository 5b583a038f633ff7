"""``hvbackup nights``: simulated nights on simulated hosts (the demo, trying a config).

The clock jumps to each job's scheduled time, night after night, while the simulated hosts
change their disks, databases and shares from one day to the next; every run goes through the
real pipeline and lands in the history and the baies.
"""

from __future__ import annotations

import argparse
from datetime import date, datetime, time, timedelta
from typing import Any

from orchestrator.cli.backup import context
from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.prune import prune_client
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock, SimulatedClock
from orchestrator.errors import UsageError
from orchestrator.history.recorder import RunAlreadyClaimed
from orchestrator.jobs.run import run_job
from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import send_alerts, send_summary
from orchestrator.schedule.spec import local_instant, runs_between


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "nights", help="run simulated nights (simulated hosts only)",
        description="Run every job as scheduled over N nights starting at --start, with a "
                    "simulated clock. Only for configurations whose hosts are all simulated.",
    )
    add_config_argument(parser)
    parser.add_argument("--nights", type=int, default=3, metavar="N")
    parser.add_argument("--start", metavar="YYYY-MM-DD", required=True,
                        help="the first night (its evening)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    real = [f"{c}/{h}" for c, client in loaded.config.clients.items()
            for h, host in client.hosts.items() if host.transport != "simulated"]
    if real:
        raise UsageError(f"'nights' only drives simulated hosts; not simulated: {', '.join(real)}")
    if not 1 <= args.nights <= 400:
        raise UsageError("--nights must be between 1 and 400")
    try:
        first = date.fromisoformat(args.start)
    except ValueError:
        raise UsageError(f"--start {args.start!r} is not a date (YYYY-MM-DD)") from None
    tz = loaded.config.msp.timezone
    start = local_instant(first, time(12, 0), tz)
    sim = SimulatedClock(start)
    ctx = context(loaded, sim)
    ctx.sleep = sim.sleep
    due: list[tuple[datetime, Any]] = []
    end = start + timedelta(days=args.nights)
    for ref in loaded.jobs():
        if ref.job.enabled:
            due += [(t, ref) for t in runs_between(ref.job.schedule, tz, start, end)]
    due.sort(key=lambda item: (item[0], item[1].label))
    rows = []
    prune_at = local_instant(first + timedelta(days=1), time(9, 0), tz)
    for when, ref in due:
        while when > prune_at:  # each morning, as the daemon does: reports, then prune
            sim.set(prune_at)
            _morning(loaded, ctx, prune_at, ui)
            prune_at += timedelta(days=1)
        sim.set(when)
        try:
            result = run_job(ctx, ref, scheduled_for=when, trigger="schedule")
        except RunAlreadyClaimed as exc:
            ui.print(f"{local_str(when, tz)}  {ref.label:<20} skipped: {exc.message}")
            continue
        figures = result.figures
        note = (result.error_message or "; ".join(result.warnings)
                or "; ".join(f"INHABITUELLE: {f.reason}" for f in result.flags))[:70]
        rows.append([local_str(when, tz), ref.label, result.status, result.consistency or "-",
                     human_bytes(figures.bytes_read or 0), human_bytes(figures.bytes_sent or 0),
                     str(figures.files or 0), note])
        ui.print(f"{local_str(when, tz)}  {ref.label:<20} {result.status}")
    sim.set(prune_at)
    _morning(loaded, ctx, prune_at, ui)
    ui.print()
    ui.table(["SCHEDULED", "JOB", "STATUS", "CONSISTENCY", "READ", "SENT", "FILES", "NOTE"],
             rows)
    return 0


def _morning(loaded: Any, ctx: Any, when: datetime, ui: Ui) -> None:
    night = when.astimezone(loaded.config.msp.timezone).date() - timedelta(days=1)
    for client in loaded.config.clients:
        digest, _email = send_digest(loaded, ctx.sessions, client, night, when,
                                     send_it=loaded.config.smtp is not None)
        ui.print(f"{local_str(when, loaded.config.msp.timezone)}  report to {client}: "
                 f"[{digest.status}] {digest.ok_count}/{len(digest.jobs)}")
        prune_client(loaded, client, ctx, when, dry_run=False)
    send_it = loaded.config.smtp is not None
    send_summary(loaded, ctx.sessions, night, when, send_it=send_it)
    alerts = send_alerts(loaded, ctx.sessions, when, send_it=send_it)
    if alerts:
        ui.print(f"{local_str(when, loaded.config.msp.timezone)}  hotline alerted: "
                 f"{alerts} problem(s)")
