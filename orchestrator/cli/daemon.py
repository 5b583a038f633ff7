"""``hvbackup run``: the scheduler daemon (see orchestrator/jobs/daemon.py)."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config import load_config
from orchestrator.jobs.daemon import Daemon


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run", help="run the scheduler (as a service)",
        description="Run every job at its scheduled time until stopped. SIGTERM or Ctrl-C: no "
                    "new run starts, running ones finish. SIGHUP: read the configuration "
                    "again (a broken file is reported and ignored). A run whose window passed "
                    "while the scheduler was down is recorded NON EXECUTEE.",
    )
    add_config_argument(parser)
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="runs at the same time (default 2; one per host anyway)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    daemon = Daemon(context(loaded, clock), max_workers=max(1, args.workers),
                    reload=lambda: load_config(loaded.path))

    def stop(signum: int, _frame: FrameType | None) -> None:
        ui.print(f"{signal.Signals(signum).name}: stopping after the runs in progress")
        daemon.stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        ui.print("SIGHUP: reading the configuration again (runs in progress keep theirs)")
        daemon.ask_reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGHUP"):  # not on Windows: restart the service there
        signal.signal(signal.SIGHUP, reload)
    jobs = sum(1 for _ in loaded.jobs())
    ui.print(f"hvbackup scheduler: {jobs} job(s) from {loaded.path}; SIGTERM to stop, "
             "SIGHUP to reload the configuration")
    daemon.serve()
    ui.print("stopped")
    return 0
