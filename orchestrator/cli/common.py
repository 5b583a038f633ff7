"""What several commands share: arguments, the configuration, who is acting, the context.

Commands open what they need through here and never import each other."""

from __future__ import annotations

import argparse
import getpass
import os
import socket

from orchestrator.clock import Clock
from orchestrator.config import LoadedConfig, config_path_from, load_config
from orchestrator.jobs.context import RunContext, open_context
from orchestrator.private import tighten


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: $HVBACKUP_CONFIG)")


def load_from_args(args: argparse.Namespace) -> LoadedConfig:
    """Load the configuration named by ``-c`` or ``HVBACKUP_CONFIG``; raises ConfigError.
    A state folder an older version left readable by other users is tightened (logged)."""
    loaded = load_config(config_path_from(args.config))
    tighten(loaded.state_dir)
    return loaded


def actor() -> str:
    """Who is running a command, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def context(loaded: LoadedConfig, clock: Clock) -> RunContext:
    """The history database, current, with the configuration's clients and jobs in it."""
    return open_context(loaded, clock, actor())
