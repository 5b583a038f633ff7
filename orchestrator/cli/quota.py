"""``hvbackup quota``: volume used per client and baie, against the subscribed volume."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.jobs.quota import client_state

LABELS = {"none": "no quota", "ok": "ok", "over": "over (noted)",
          "warning": "10 % OVER: client told, 30 days to act", "blocked": "BLOCKED: backups stop"}


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "quota", help="volume used against the subscribed volume, with a forecast",
        description="For each client: the volume its backups take (largest baie), the "
                    "subscribed volume, the state and when the quota will be reached at the "
                    "pace of the last 30 days. Figures come from the last runs.",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ctx = context(loaded, clock)
    rows = []
    for name in loaded.config.clients:
        state = client_state(ctx.sessions, loaded, name, clock.now())
        rows.append([name, human_bytes(state.used),
                     human_bytes(state.quota) if state.quota else "-",
                     f"{state.percent:.0f} %" if state.percent is not None else "-",
                     LABELS[state.status],
                     f"{state.forecast:%d/%m/%Y}" if state.forecast else "-"])
    ui.table(["CLIENT", "USED", "SUBSCRIBED", "%", "STATE", "FULL BY"], rows)
    return 0
