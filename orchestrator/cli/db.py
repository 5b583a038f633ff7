"""``hvbackup db upgrade``: create or migrate the history database, then record the config's
clients and jobs in it."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import actor, add_config_argument, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.history.db import open_engine, session_factory, shown_url, upgrade
from orchestrator.history.sync import sync_config


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "db", help="manage the history database",
        description="Manage the history database named by the configuration's 'database:'.",
    )
    db_sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser(
        "upgrade", help="create or migrate the schema, then record clients and jobs",
        description="Create the schema if the database is empty, or migrate it to this "
                    "version's; then record the configuration's clients and jobs. Safe to run "
                    "again: it changes nothing when everything is current.",
    )
    add_config_argument(up)
    up.set_defaults(handler=run_upgrade)



def run_upgrade(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    url = loaded.database_url
    engine = open_engine(url)
    try:
        before, after = upgrade(engine)
        where = shown_url(url)
        if before is None:
            ui.print(f"{where}: schema created (revision {after})")
        elif before != after:
            ui.print(f"{where}: schema upgraded from revision {before} to {after}")
        else:
            ui.print(f"{where}: schema already current (revision {after})")
        with session_factory(engine)() as session, session.begin():
            result = sync_config(session, loaded, clock.now(), actor())
        jobs = sum(1 for _ in loaded.jobs())
        ui.print(f"clients: {len(loaded.config.clients)} ({len(result.clients_added)} new), "
                 f"jobs: {jobs} ({len(result.jobs_added)} new)")
        for name in result.clients_deactivated + result.jobs_deactivated:
            ui.print(f"no longer in the configuration, kept as inactive: {name}")
    finally:
        engine.dispose()
    return 0
