"""Logging set-up for the CLI and the daemon.

Modules log through ``logging.getLogger(__name__)``; this only decides where it goes.
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
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries are chatty at DEBUG; keep them at WARNING unless asked otherwise.
    for noisy in ("alembic", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
