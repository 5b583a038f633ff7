"""``hvbackup service``: write the systemd units or the Windows service configuration, filled
in for this installation (the hvbackup executable, the configuration, the writable paths)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config import load_config
from orchestrator.config.models import LocalBaie
from orchestrator.resources import read_text, service_files


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "service", help="print the systemd unit or Windows service configuration",
        description="Print a service definition for this installation. Linux: "
                    "'hvbackup service unit -c /etc/hvbackup/hvbackup.yaml > "
                    "/etc/systemd/system/hvbackup.service'. Windows: 'hvbackup service winsw "
                    "-c C:\\\\hvbackup\\\\hvbackup.yaml > hvbackup-service.xml' (WinSW).",
    )
    actions = parser.add_subparsers(dest="service_command", metavar="KIND", required=True)
    unit = actions.add_parser("unit", help="a hardened systemd unit")
    unit.add_argument("-c", "--config", metavar="FILE", required=True,
                      help="the configuration the service uses (absolute path)")
    unit.add_argument("--dashboard", action="store_true",
                      help="the dashboard's unit instead of the scheduler's")
    unit.add_argument("--user", default="hvbackup", help="system account (default hvbackup)")
    unit.set_defaults(handler=run_unit)
    winsw = actions.add_parser("winsw", help="a WinSW service definition (Windows)")
    winsw.add_argument("-c", "--config", metavar="FILE", required=True)
    winsw.set_defaults(handler=run_winsw)


def _executable() -> str:
    """The hvbackup of this installation (beside its Python), else the one on PATH."""
    for name in ("hvbackup", "hvbackup.exe"):
        beside = Path(sys.executable).absolute().parent / name
        if beside.exists():
            return str(beside)
    found = shutil.which("hvbackup")
    return str(Path(found).absolute()) if found else "hvbackup"


def unit_text(config: Path, dashboard: bool, user: str, executable: str) -> str:
    """The unit for ``config``: local baies and the state directory writable, nothing else."""
    loaded = load_config(config)
    writable = {str(loaded.state_dir)}
    for baie in loaded.config.baies.values():
        if isinstance(baie, LocalBaie):
            writable.add(str(loaded.resolve(baie.path)))
    name = "hvbackup-dashboard.service" if dashboard else "hvbackup.service"
    # "-" before a path: a baie not mounted yet must not stop the service from starting.
    paths = " ".join(sorted(f"-{p}" for p in writable))
    return (read_text(service_files(), name).replace("@USER@", user)
            .replace("@CONFIG@", str(config.resolve())).replace("@EXEC@", executable)
            .replace("@WRITABLE@", paths))


def run_unit(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ui.print(unit_text(Path(args.config), args.dashboard, args.user, _executable()).rstrip())
    return 0


def run_winsw(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    load_config(Path(args.config))  # a broken configuration is said now, not at first start
    text = read_text(service_files(), "hvbackup-winsw.xml")
    config = str(Path(args.config).resolve())
    ui.print(text.replace("@EXEC@", _executable()).replace("@CONFIG@", config).rstrip())
    return 0
