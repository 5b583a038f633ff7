"""The ``hvbackup`` command: parses arguments and maps errors to exit codes.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module's
``run(args, clock, ui)`` does the work. Exit codes: 0 success, the error's ``exit_code`` for an
:class:`~orchestrator.errors.HvbError` (2 for bad input), 130 when interrupted, 70 for a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.cli import (
    acknowledge,
    agent,
    backup,
    client,
    daemon,
    db,
    host,
    inventory,
    keys,
    nights,
    plan,
    prune,
    quota,
    report,
    restore,
    restore_sql,
    runbook,
    selfbackup,
    serve,
    service,
    snapshots,
    usage,
    users,
    validate,
    verify,
)
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import HvbError
from orchestrator.logsetup import setup_logging
from orchestrator.private import private_files

log = logging.getLogger(__name__)

COMMANDS = (validate, plan, host, inventory, backup, daemon, nights, keys, snapshots, restore,
            restore_sql, verify, prune, quota, usage, report, runbook, client, users,
            acknowledge, serve, service, selfbackup, db, agent)
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hvbackup",
        description="Hot backups of Hyper-V hosts, SQL Server and file shares for MSPs.",
        epilog="The configuration file may also be given by the HVBACKUP_CONFIG variable.",
    )
    parser.add_argument("--version", action="version", version=f"hvbackup {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    ui = Ui()
    try:
        with private_files():
            code: int = args.handler(args, clock or SystemClock(), ui)
        return code
    except HvbError as exc:
        ui.error(exc.message)
        log.debug("error %s", exc.code, exc_info=True)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except Exception:  # a bug: say so plainly, with the traceback to report it
        ui.error("internal error, please report it with the traceback below")
        traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
