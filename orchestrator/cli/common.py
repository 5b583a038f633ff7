"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

from orchestrator.config import LoadedConfig, config_path_from, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: $HVBACKUP_CONFIG)")


def load_from_args(args: argparse.Namespace) -> LoadedConfig:
    """Load the configuration named by ``-c`` or ``HVBACKUP_CONFIG``; raises ConfigError."""
    return load_config(config_path_from(args.config))
