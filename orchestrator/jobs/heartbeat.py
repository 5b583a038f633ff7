"""The heartbeat, after every scheduler cycle: written to the history (``schedulers.seen_at``:
the dashboard says which scheduler leads, when it was last seen, and turns red when it is
late), and an
HTTP GET to ``msp.heartbeat_url`` (healthchecks.io, Uptime Kuma "push" monitors and the like),
``<url>/fail`` when the cycle failed. Whatever happens to either is only logged: it never stops
the scheduler."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import __version__
from orchestrator.history.models import SchedulerRow

log = logging.getLogger(__name__)


def record_beat(sessions: sessionmaker[Session], name: str, started_at: datetime,
                now: datetime, leading: bool = True) -> bool:
    """This scheduler (``name``: host:pid) was seen at ``now``, leading or following (a
    leader clears the others' ``leading_since``: only one leads); True when written."""
    try:
        with sessions() as session, session.begin():
            row = session.scalars(select(SchedulerRow).where(SchedulerRow.name == name)
                                  ).first()
            if row is None:
                row = SchedulerRow(name=name, started_at=started_at, seen_at=now,
                                   version=__version__)
                session.add(row)
            row.seen_at = now
            if not leading:
                row.leading_since = None
            elif row.leading_since is None:
                row.leading_since = now
                session.flush()
                session.execute(update(SchedulerRow).where(SchedulerRow.name != name)
                                .values(leading_since=None))
        return True
    except SQLAlchemyError as exc:
        log.warning("scheduler heartbeat not written to the history: %s", exc)
        return False


def ping(url: str, ok: bool, timeout_s: float = 10.0) -> bool:
    """Ping; True when the monitor answered 2xx."""
    target = url if ok else url.rstrip("/") + "/fail"
    request = urllib.request.Request(target, headers={"User-Agent": f"hvbackup/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status: int = answer.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("heartbeat to %s failed: %s", _shown(target), exc)
        return False
    if not 200 <= status < 300:
        log.warning("heartbeat to %s answered HTTP %d", _shown(target), status)
        return False
    return True


def _shown(url: str) -> str:
    """The URL without its path: heartbeat URLs carry their secret in the path."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…"
