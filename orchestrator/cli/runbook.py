"""``hvbackup runbook CODE``: what to do about an error code, as the hotline's alerts name it
when no dashboard address is configured."""

from __future__ import annotations

import argparse
import re
from typing import Any

from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.resources import runbook_files


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "runbook", help="show the runbook of an error code",
        description="Print the runbook of CODE (e.g. HVB-HOST-UNREACHABLE): what it means and "
                    "what to do. Alerts name it when the dashboard has no address.",
    )
    parser.add_argument("code", metavar="CODE")
    parser.add_argument("--lang", choices=("fr", "en"), default="fr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    code = str(args.code).upper()
    page = runbook_files() / args.lang / f"{code}.md"
    if not re.fullmatch(r"HVB-[A-Z0-9-]+", code) or not page.is_file():
        known = sorted(item.name.removesuffix(".md") for item in
                       (runbook_files() / args.lang).iterdir() if item.name.endswith(".md"))
        raise UsageError(f"no runbook {args.code!r}; known codes: {', '.join(known)}")
    ui.print(page.read_text(encoding="utf-8").rstrip("\n"))
    return 0
