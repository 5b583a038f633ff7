"""``hvbackup self-backup``: back up the orchestrator itself now (its configuration, history
and key material) through the job marked ``prepare: orchestrator``."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.backup import run_ref
from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.models import FilesJob
from orchestrator.errors import UsageError

EXAMPLE = """\
no job backs up the orchestrator itself. Add one to an MSP "client" whose key the MSP keeps
offline, for example:
  clients:
    msp:
      name: MSP (orchestrator)
      contacts: [hotline@msp.example]
      encryption: {public_key_file: keys/msp.pub}
      hosts:
        orchestrator: {address: localhost, transport: local}
      jobs:
        orchestrator:
          type: files
          host: orchestrator
          paths: [/var/lib/hvbackup/self-backup]
          prepare: orchestrator
          schedule: daily 06:30"""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "self-backup", help="back up the orchestrator itself now",
        description="Gather the configuration, a consistent copy of the history database and "
                    "the key material the orchestrator holds (never a client's private key: "
                    "it has none), then back them up like any files job, through the job "
                    "marked 'prepare: orchestrator' (the scheduler also runs it on its "
                    "schedule). Restoring a lost orchestrator: docs/restore-orchestrator.md.",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    refs = [r for r in loaded.jobs() if isinstance(r.job, FilesJob)
            and r.job.prepare == "orchestrator"]
    if not refs:
        raise UsageError(EXAMPLE)
    code = 0
    for ref in refs:
        code = max(code, run_ref(loaded, ref, clock, ui, trigger="self-backup"))
    return code
