"""``hvbackup backup``: run one job now, with its figures and what to check."""

from __future__ import annotations

import argparse
import socket
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.interactive import Progress, human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.load import JobRef, LoadedConfig
from orchestrator.findings import RunStatus, Severity
from orchestrator.jobs.run import RunResult, run_job
from orchestrator.store.backup import BackupStats

EXIT_ECHEC = 1


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "backup", help="run one job now",
        description="Run CLIENT/JOB now: capture on the host, store in the first copy's baie, "
                    "copy to the others, record everything in the history. Exit status 0 for "
                    "REUSSIE or AVERTISSEMENT, 1 for ECHEC.",
    )
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.set_defaults(handler=run)


def describe(result: RunResult) -> list[str]:
    figures = result.figures
    lines = [f"{result.status}: run {result.uid}"
             + (f", snapshot {result.snapshot[:12]}" if result.snapshot else "")]
    if figures.bytes_read is not None:
        lines.append(f"  read {human_bytes(figures.bytes_read)} in {figures.files} file(s), new "
                     f"{human_bytes(figures.bytes_new or 0)}, sent "
                     f"{human_bytes(figures.bytes_sent or 0)}, consistency "
                     f"{result.consistency or '-'}")
    for finding in result.findings:
        said = "error" if finding.severity >= Severity.FAILURE else "warning"
        code = finding.code + (f" ({finding.script_code})" if finding.script_code else "")
        lines.append(f"  {said} {code}: {finding.headline}")
    lines += [f"  INHABITUELLE: {f.reason}" for f in result.flags]
    return lines


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    return run_ref(loaded, loaded.job(args.job), clock, ui)


def run_ref(loaded: LoadedConfig, ref: JobRef, clock: Clock, ui: Ui,
            trigger: str = "manual") -> int:
    """Run one job now with a progress line; the exit status of `hvbackup backup`."""
    ctx = context(loaded, clock)
    ui.print(f"{ref.label}: {ref.job.type} on {ref.job.host} ({socket.gethostname()})")
    progress = Progress()

    def show(stats: BackupStats) -> None:
        progress.show(stats.bytes_read, f"{stats.files} file(s), {human_bytes(stats.bytes_read)} "
                      f"read, {human_bytes(stats.bytes_new)} new, "
                      f"{human_bytes(stats.bytes_stored)} sent")

    ctx.progress = show
    try:
        result = run_job(ctx, ref, trigger=trigger)
    finally:
        progress.done()
    for line in describe(result):
        ui.print(line)
    return EXIT_ECHEC if result.status == RunStatus.ECHEC else 0
