"""The index cache of a restore: under the state folder, one folder per restoring process.

A restore keeps a copy of the repository index while it runs (``<state>/restore-cache/<pid>``).
A restore that was killed cannot remove its own; the next one removes every folder whose
process is gone, so nothing piles up (and nothing sits in ``/tmp`` readable by others).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.procs import pid_alive

log = logging.getLogger(__name__)


@contextmanager
def restore_cache(state_dir: Path) -> Iterator[Path]:
    """A fresh private folder for this process's restore, removed at the end; removes first
    the folders of restores whose process is dead."""
    base = state_dir / "restore-cache"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in base.iterdir():
        if folder.name.isdigit() and int(folder.name) != os.getpid() \
                and not pid_alive(int(folder.name)):
            log.info("removing %s, left by a restore that was interrupted", folder)
            shutil.rmtree(folder, ignore_errors=True)
    mine = base / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(mode=0o700)
    try:
        yield mine
    finally:
        shutil.rmtree(mine, ignore_errors=True)
