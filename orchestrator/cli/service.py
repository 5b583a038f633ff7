"""``hvbackup service``: write the systemd units or the Windows service configuration, filled
in for this installation (the hvbackup executable, the configuration, the writable paths)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from orchestrator.agent.runner import PART_FILE, load_part
from orchestrator.agent.state import STATE_FILE, agent_dir
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config import load_config
from orchestrator.config.models import LocalBaie
from orchestrator.errors import UsageError
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
    unit.add_argument("-c", "--config", metavar="FILE",
                      help="the configuration the service uses (absolute path); not for "
                           "--agent, which receives its site's part from the server")
    unit.add_argument("--dashboard", action="store_true",
                      help="the dashboard's unit instead of the scheduler's")
    unit.add_argument("--user", default="hvbackup", help="system account (default hvbackup)")
    _agent_arguments(unit)
    unit.set_defaults(handler=run_unit)
    winsw = actions.add_parser("winsw", help="a WinSW service definition (Windows)")
    winsw.add_argument("-c", "--config", metavar="FILE")
    _agent_arguments(winsw)
    winsw.set_defaults(handler=run_winsw)


def _agent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", action="store_true",
                        help="the site agent's service ('hvbackup agent run'), on a machine "
                             "at the client's site, once 'hvbackup agent enroll' is done")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="with --agent: the agent's state folder given to 'agent enroll' "
                             "(default: the platform's state folder, then agent)")


def _check(args: argparse.Namespace) -> None:
    if args.agent and args.config:
        raise UsageError("--agent takes no -c: the agent receives its site's part of the "
                         "configuration from the server (give --state-dir instead)")
    if not args.agent and not args.config:
        raise UsageError("say which configuration the service uses (-c FILE), or --agent "
                         "for a site agent's service")
    if args.state_dir and not args.agent:
        raise UsageError("--state-dir is for --agent only (the scheduler's state folder "
                         "is in its configuration)")
    if args.agent and getattr(args, "dashboard", False):
        raise UsageError("--agent and --dashboard are two services: choose one")


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


def agent_unit_text(state_dir: Path, user: str, executable: str) -> str:
    """The agent's unit: its state folder writable, and the local baies of the site's part it
    keeps (``part.json``, received from the server at enrollment and every cycle)."""
    state = state_dir.absolute()
    writable = {str(state)}
    part = state / PART_FILE
    if part.exists():
        loaded = load_part(json.loads(part.read_text(encoding="utf-8")), state)
        for baie in loaded.config.baies.values():
            if isinstance(baie, LocalBaie):
                writable.add(str(loaded.resolve(baie.path)))
    paths = " ".join(sorted(f"-{p}" for p in writable))
    return (read_text(service_files(), "hvbackup-agent.service").replace("@USER@", user)
            .replace("@STATE@", str(state)).replace("@EXEC@", executable)
            .replace("@WRITABLE@", paths))


def _enrolled(state_dir: Path) -> Path:
    """The agent's state folder, once enrolled (a service that could only fail is refused)."""
    if not (state_dir / STATE_FILE).exists():
        raise UsageError(f"no agent is enrolled in {state_dir}: run 'hvbackup agent enroll "
                         "--server URL --token T' first (with the same --state-dir)")
    return state_dir


def run_unit(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    _check(args)
    if args.agent:
        state = _enrolled(agent_dir(args.state_dir))
        ui.print(agent_unit_text(state, args.user, _executable()).rstrip())
        return 0
    ui.print(unit_text(Path(args.config), args.dashboard, args.user, _executable()).rstrip())
    return 0


def run_winsw(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    _check(args)
    if args.agent:
        state = escape(str(_enrolled(agent_dir(args.state_dir)).absolute()))
        text = read_text(service_files(), "hvbackup-agent-winsw.xml")
        ui.print(text.replace("@EXEC@", escape(_executable())).replace("@STATE@", state)
                 .rstrip())
        return 0
    load_config(Path(args.config))  # a broken configuration is said now, not at first start
    text = read_text(service_files(), "hvbackup-winsw.xml")
    config = escape(str(Path(args.config).resolve()), {'"': "&quot;"})
    ui.print(text.replace("@EXEC@", escape(_executable())).replace("@CONFIG@", config).rstrip())
    return 0
