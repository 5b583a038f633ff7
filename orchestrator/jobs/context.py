"""What every run and every maintenance task works in: the configuration, the clock and the
history database, opened once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig
from orchestrator.history.db import open_engine, require_current, session_factory
from orchestrator.history.recorder import close_interrupted
from orchestrator.history.sync import sync_config
from orchestrator.report.hotline import record_run_alert
from orchestrator.store.backup import BackupStats


@dataclass
class RunContext:
    loaded: LoadedConfig
    clock: Clock
    sessions: sessionmaker[Session]
    sleep: Callable[[float], None] = time.sleep
    progress: Callable[[BackupStats], None] | None = None  # a terminal's progress line


def open_context(loaded: LoadedConfig, clock: Clock, actor: str) -> RunContext:
    """The history database, checked current (raises SchemaOutOfDate otherwise), with the
    configuration's clients and jobs recorded in it (by ``actor``, for the audit log), and the
    runs a stopped orchestrator left open closed."""
    engine = open_engine(loaded.database_url)
    require_current(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        sync_config(session, loaded, clock.now(), actor)
    close_interrupted_runs(sessions, clock.now())
    return RunContext(loaded, clock, sessions)


def close_interrupted_runs(sessions: sessionmaker[Session], now: datetime) -> list[str]:
    """Close as ECHEC the runs a stopped orchestrator left 'running' (see
    ``history.recorder.close_interrupted``), each with its alert to the hotline; returns their
    uids."""
    closed = close_interrupted(sessions, now)
    for uid in closed:
        record_run_alert(sessions, uid, now)
    return closed
