"""``hvbackup restore-sql``: a database back from a .bak file on its SQL Server host, through
``Restore-HvbSqlDatabase`` (under a new name by default; over production only when asked,
confirmed by name, and audited)."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import actor, add_config_argument, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.models import SqlServerJob
from orchestrator.errors import HvbError, UsageError
from orchestrator.history.db import open_engine, session_factory
from orchestrator.history.models import AuditRow
from orchestrator.hosts.open import open_host

ACTION = "sql.restore"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "restore-sql", help="restore a SQL Server database from a .bak file on its host",
        description="Restore DATABASE of the sql-server job CLIENT/JOB from --backup-file, a .bak "
                    "on the job's host (inside an onboarded restore or staging folder: copy "
                    "what `hvbackup restore` gave there). By default under a new name "
                    "(DATABASE_restore_<time>); --target-name picks one, --replace overwrites a "
                    "database an earlier restore made. Overwriting any other database, "
                    "production included, needs --overwrite-production and --confirm with the "
                    "target's name; every restore is written to the audit log (who, what, "
                    "when, the outcome). --dry-run shows the plan.")
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.add_argument("--database", required=True, metavar="NAME",
                        help="the database the .bak holds")
    parser.add_argument("--backup-file", required=True, metavar="PATH",
                        help="the .bak on the host, e.g. D:\\Restore\\COMPTA.bak")
    parser.add_argument("--target-name", metavar="NAME")
    parser.add_argument("--data-path", metavar="PATH")
    parser.add_argument("--log-path", metavar="PATH")
    parser.add_argument("--replace", action="store_true",
                        help="overwrite a database an earlier hvbackup restore made")
    parser.add_argument("--overwrite-production", action="store_true",
                        help="also overwrite a database no restore made (production): audited")
    parser.add_argument("--confirm", metavar="NAME",
                        help="with --overwrite-production: the target's name, typed again")
    parser.add_argument("--dry-run", action="store_true")
    parser.set_defaults(handler=run)


def _options(args: argparse.Namespace, job: SqlServerJob) -> dict[str, Any]:
    if args.overwrite_production:
        target = args.target_name or args.database
        if args.confirm != target:
            raise UsageError(f"--overwrite-production replaces the database {target} on "
                             f"{job.instance} with the backup: add --confirm {target} to say so")
    options: dict[str, Any] = {"Instance": job.instance, "BackupFile": args.backup_file,
                               "DatabaseName": args.database}
    if args.overwrite_production:
        # Over production: the target is the database itself unless named otherwise.
        options.update(TargetName=args.target_name or args.database, Replace=True,
                       OverwriteProduction=True)
    else:
        if args.target_name:
            options["TargetName"] = args.target_name
        if args.replace:
            options["Replace"] = True
    for key, value in (("DataPath", args.data_path), ("LogPath", args.log_path)):
        if value:
            options[key] = value
    if args.dry_run:
        options["DryRun"] = True
    return options


def _audit(url: str, clock: Clock, target: str, details: dict[str, Any]) -> None:
    engine = open_engine(url)
    try:
        with session_factory(engine)() as session, session.begin():
            session.add(AuditRow(at=clock.now(), actor=actor(), action=ACTION, target=target,
                                 details=details))
    finally:
        engine.dispose()


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ref = loaded.job(args.job)
    if not isinstance(ref.job, SqlServerJob):
        raise UsageError(f"{args.job} is a {ref.job.type} job: restore-sql restores the "
                         "databases of a sql-server job")
    options = _options(args, ref.job)
    where = f"{ref.client_name}/{ref.job.host}"
    target = f"{where}/{ref.job.instance}/{options.get('TargetName', args.database)}"
    asked = {k: v for k, v in options.items() if k != "Instance"}
    # Written before the host is called: an attempt over production is on record whatever
    # happens next.
    if not args.dry_run:
        _audit(loaded.database_url, clock, target, {"job": args.job, "outcome": "requested",
                                                    **asked})
    host = open_host(loaded.host(where), clock)
    try:
        result = host.run("Restore-HvbSqlDatabase", **options)
    except HvbError as exc:
        if not args.dry_run:
            _audit(loaded.database_url, clock, target, {
                "job": args.job, "outcome": "failed", "code": exc.code,
                "script_code": getattr(exc, "script_code", None), **asked})
        raise
    finally:
        host.close()
    if args.dry_run:
        ui.print(f"dry run on {where}: would restore {args.database} as {result['database']} "
                 f"({'over the existing database' if result.get('replaced') else 'new'})")
        for move in result.get("moves", []):
            ui.print(f"  {move['logical']} -> {move['to']}")
        return 0
    _audit(loaded.database_url, clock, target, {
        "job": args.job, "outcome": "done", "database": result["database"],
        "replaced": result.get("replaced", False),
        "overwrote_production": result.get("overwrote_production", False), **asked})
    over = " over the production database" if result.get("overwrote_production") else ""
    ui.print(f"restored {args.database} from {args.backup_file} as {result['database']} on "
             f"{ref.job.instance} ({where}){over}; recorded in the audit log")
    return 0
