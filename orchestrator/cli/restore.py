"""``hvbackup restore``: files of a restore point back to a folder, every chunk checked."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import Progress, human_bytes
from orchestrator.cli.keys import open_key
from orchestrator.cli.timefmt import snapshot_time
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.store.open import default_baie, open_for_reading
from orchestrator.store.restore import Restorer, RestoreStats


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "restore", help="restore files from a restore point",
        description="Restore a snapshot of CLIENT/JOB (or only --path inside it) under --to. "
                    "Needs the client's key file (or the escrow key) and its passphrase.",
    )
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.add_argument("--snapshot", default="latest", metavar="ID|latest")
    parser.add_argument("--to", required=True, metavar="DIR")
    parser.add_argument("--path", metavar="P", help="restore only this file or folder")
    parser.add_argument("--key-file", required=True, metavar="F")
    parser.add_argument("--baie", metavar="NAME")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ref = loaded.job(args.job)
    key = open_key(args.key_file)
    baie = default_baie(loaded, ref.client_name, args.baie)
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="hvb-restore-") as cache:
        repo = open_for_reading(loaded.repository(ref.client_name, baie), key, Path(cache))
        try:
            repo.sync_index()
            info = repo.find_snapshot(args.snapshot, job=ref.job_name)

            def show(stats: RestoreStats) -> None:
                progress.show(stats.bytes, f"{stats.files} file(s), {human_bytes(stats.bytes)}")

            stats = Restorer(repo, key).restore(info, Path(args.to), only=args.path,
                                                progress=show)
        finally:
            progress.done()
            repo.close()
    ui.print(f"restored {stats.files} file(s), {human_bytes(stats.bytes)}, from snapshot "
             f"{info.id[:12]} ({snapshot_time(info.meta, loaded.config.msp.timezone)}) of "
             f"{args.job} on {baie} into {args.to}")
    return 0
