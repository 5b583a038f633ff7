"""``hvbackup verify``: is everything there, intact, and (with the key) readable?"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import Progress, human_bytes
from orchestrator.cli.keys import open_key
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import RepositoryCorrupt, UsageError
from orchestrator.jobs import rollback
from orchestrator.store.open import default_baie, open_for_reading, open_for_writing
from orchestrator.store.verify import Problem, VerifyReport, verify


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify", help="check a client's repository",
        description="Check that every pack the index names is on the baie with the right size "
                    "and that every snapshot's chunks are indexed; read back a subset of packs "
                    "and check their content (without any key: the SHA-256 of each pack; with "
                    "--key-file: every chunk decrypted). Exit status 4 if anything is wrong.",
    )
    add_config_argument(parser)
    parser.add_argument("client", metavar="CLIENT")
    parser.add_argument("--read-data-subset", default="0%", metavar="N%",
                        help="share of packs to read back whole (e.g. 5%%, 100%%)")
    parser.add_argument("--key-file", metavar="F")
    parser.add_argument("--baie", metavar="NAME")
    parser.set_defaults(handler=run)


def _subset(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--read-data-subset: {text!r} is not a percentage") from None
    if not 0 <= value <= 1:
        raise UsageError("--read-data-subset must be between 0% and 100%")
    return value


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    if args.client not in loaded.config.clients:
        raise UsageError(f"no client {args.client!r} in {loaded.path}")
    subset = _subset(args.read_data_subset)
    baie = default_baie(loaded, args.client, args.baie)
    progress = Progress()

    def show(report: VerifyReport) -> None:
        progress.show(report.bytes_read, f"{report.packs_read} pack(s) read")

    with tempfile.TemporaryDirectory(prefix="hvb-verify-") as cache:
        key = open_key(args.key_file) if args.key_file else None
        repo = (open_for_reading(loaded.repository(args.client, baie), key, Path(cache)) if key
                else open_for_writing(loaded.repository(args.client, baie), create=False))
        try:
            report = verify(repo, subset=subset, key=key, progress=show)
            present = rollback.listed(repo.target)
        finally:
            progress.done()
            repo.close()
    gaps = _against_history(loaded, args.client, baie, present)
    if gaps is None:
        ui.print("WARNING: the history cannot be read: a rollback of this baie is not checked")
    elif gaps.deferred:
        ui.print(f"note: a backup of {args.client} is in progress: the baie's restore points are "
                 "compared with the history at its end (run verify again after it)")
    else:
        report.problems += [Problem(f.message) for f in gaps.findings()]
    _record(loaded, args.client, baie, report, key is not None, subset, clock)
    ui.print(f"{args.client} on {baie}: {report.snapshots} snapshot(s), {report.packs} pack(s); "
             f"{report.packs_read} read back ({human_bytes(report.bytes_read)})"
             + (f", {report.chunks_checked} chunk(s) decrypted and checked" if key else ""))
    if report.strays:
        ui.print(f"{len(report.strays)} file(s) that are not the repository's, ignored: "
                 + ", ".join(report.strays[:10]))
    if not report.writer_proven:
        ui.print(f"WARNING: {args.key_file} records no orchestrator signing key, so nothing "
                 "proves who wrote this repository; run 'hvbackup keys check' once to record it")
    if report.unauthenticated:
        ui.print(f"note: {len(report.unauthenticated)} snapshot(s) written before snapshots "
                 f"were signed (not authenticated): {', '.join(report.unauthenticated[:10])}")
    if report.ok:
        ui.print("no problem found")
        return 0
    ui.print(f"{len(report.problems)} PROBLEM(S):")
    for problem in report.problems:
        ui.print(str(problem))
    raise RepositoryCorrupt(f"verify found {len(report.problems)} problem(s) in the repository "
                            f"of {args.client} on {baie} (listed above)")


def _against_history(loaded: Any, client: str, baie: str, present: set[str]
                     ) -> rollback.HistoryGaps | None:
    """The baie's snapshot names against the snapshots the history committed (None when the
    history cannot be read)."""
    from orchestrator.history.db import open_engine, session_factory

    try:
        engine = open_engine(loaded.database_url)
        try:
            with session_factory(engine)() as session:
                return rollback.compare(session, client, baie, present)
        finally:
            engine.dispose()
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("history not read: %s", exc)
        return None


def _record(loaded: Any, client: str, baie: str, report: VerifyReport, with_key: bool,
            subset: float, clock: Clock) -> None:
    """The last verification is shown in the client's report: keep it in the audit log."""
    from orchestrator.cli.common import actor
    from orchestrator.history.db import open_engine, session_factory
    from orchestrator.history.models import AuditRow

    try:
        engine = open_engine(loaded.database_url)
        with session_factory(engine)() as session, session.begin():
            session.add(AuditRow(at=clock.now(), actor=actor(), action="repository.verify",
                                 target=f"{client}/{baie}", details={
                                     "ok": report.ok, "problems": len(report.problems),
                                     "packs_read": report.packs_read, "subset": subset,
                                     "with_key": with_key}))
        engine.dispose()
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("verification not recorded: %s", exc)
