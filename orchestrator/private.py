"""Files the orchestrator keeps are its account's alone (like the keys): folders 0700, files 0600.

The history, the outbox (client mails), the index caches and the state files say what every
client has, when and where; no other local user reads them. :func:`private_files` sets the
process umask while a command runs, so that whatever it creates (SQLite's ``-wal`` file too) is
private; :func:`tighten` corrects what an older version left readable, once, with a warning.

POSIX only: on Windows the folders under ``%PROGRAMDATA%`` get their ACLs from the installer.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

UMASK = 0o077
_LOOSE = stat.S_IRWXG | stat.S_IRWXO


@contextmanager
def private_files() -> Iterator[None]:
    """While inside, files and folders this process creates are readable by its account only
    (the previous umask comes back after)."""
    if os.name == "nt":  # pragma: no cover - Windows: ACLs, not modes
        yield
        return
    previous = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def private_dir(path: Path) -> Path:
    """``path`` as a folder (created) that only this account can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    tighten(path)
    return path


def tighten(path: Path) -> int:
    """Remove the group and other permissions of ``path`` and, when it is a folder that was
    open to them, of everything under it (links are not followed). Returns how many entries
    were changed; logs a warning naming ``path`` when there were any."""
    if os.name == "nt":  # pragma: no cover
        return 0
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(mode) or not mode & _LOOSE:
        return 0
    changed = _chmod(path, mode)
    if stat.S_ISDIR(mode):
        for folder, dirs, files in os.walk(path, followlinks=False):
            for name in dirs + files:
                entry = Path(folder, name)
                try:
                    entry_mode = entry.lstat().st_mode
                except FileNotFoundError:
                    continue
                if not stat.S_ISLNK(entry_mode) and entry_mode & _LOOSE:
                    changed += _chmod(entry, entry_mode)
    log.warning("%s was readable by other local users: permissions tightened (%d entr%s, "
                "folders 0700, files 0600)", path, changed, "y" if changed == 1 else "ies")
    return changed


def _chmod(path: Path, mode: int) -> int:
    try:
        os.chmod(path, stat.S_IMODE(mode) & ~_LOOSE)  # links were left out by the caller
    except OSError as exc:
        log.warning("cannot tighten the permissions of %s: %s", path, exc.strerror)
        return 0
    return 1
