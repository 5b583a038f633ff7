"""Logging set-up for the CLI and the daemon.

Modules log through ``logging.getLogger(__name__)``; this only decides where it goes: stderr
always (under systemd that is the journal, with the unit's SyslogIdentifier), and on Windows
the Application event log too (source "hvbackup", warnings and errors) when pywin32 is there.
Under systemd (``JOURNAL_STREAM`` set) lines carry no timestamp: the journal adds its own.
"""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(verbosity: int = 0) -> None:
    """Send log records to stderr; ``verbosity`` 0 = WARNING, 1 = INFO, 2+ = DEBUG.

    ``HVBACKUP_LOG_LEVEL`` (DEBUG, INFO, ...) overrides the verbosity. Idempotent.
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    env_level = os.environ.get("HVBACKUP_LOG_LEVEL", "").upper()
    if env_level in logging.getLevelNamesMapping():
        level = logging.getLevelNamesMapping()[env_level]
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hvbackup", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._hvbackup = True  # type: ignore[attr-defined]
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler.setFormatter(logging.Formatter(stamp + "%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if os.name == "nt":  # pragma: no cover - Windows only
        _event_log(root)
    root.setLevel(level)
    # Libraries are chatty at DEBUG; keep them at WARNING unless asked otherwise.
    for noisy in ("alembic", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _event_log(root: logging.Logger) -> None:  # pragma: no cover - Windows only
    try:
        from logging.handlers import NTEventLogHandler

        handler = NTEventLogHandler("hvbackup")
    except Exception:  # pywin32 missing, or no right to register the source: stderr suffices
        return
    handler._hvbackup = True  # type: ignore[attr-defined]
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(handler)
