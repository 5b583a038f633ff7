"""Two schedulers on one PostgreSQL history, as two real processes: one leads and plans (claims
the due runs, records NON EXECUTEE, builds the reports), the other follows and plans nothing;
when the leader is killed (SIGKILL: no goodbye, PostgreSQL frees its lock when its connection
dies) the follower takes over within seconds and plans from then on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config import load_config
from orchestrator.history.db import open_engine, session_factory, upgrade
from orchestrator.history.models import EmailRow, JobRow, RunRow, SchedulerRow
from orchestrator.history.sync import sync_config
from tests.conftest import REPO, write_config

PARIS = ZoneInfo("Europe/Paris")

CONFIG = """\
version: 1
state_dir: {state}
database: {url}
msp:
  name: MSP
  hotline: [hotline@msp.example]
  timezone: Europe/Paris
baies:
  site-a: {{type: local, path: {root}/baie-a}}
clients:
  acme:
    name: ACME
    contacts: [it@acme.example]
    encryption: {{public_key_file: {root}/acme.pub}}
    copies: [site-a]
    hosts:
      hv01:
        address: hv01
        transport: simulated
        simulated: {{seed: 4, share_files: 20, data_dir: {root}/sim-hv01}}
      hv02:
        address: hv02
        transport: simulated
        simulated: {{seed: 5, share_files: 20, data_dir: {root}/sim-hv02,
                     faults: [{{kind: slow, delay_s: 3}}]}}
    jobs:
      partages:
        type: files
        host: hv01
        paths: ['D:\\Partages']
        schedule: "daily {due}"
        window_hours: 2
      lent:
        type: files
        host: hv02
        paths: ['D:\\Partages']
        schedule: "daily {due}"
        window_hours: 2
      ancien:
        type: files
        host: hv01
        paths: ['D:\\Partages']
        schedule: "daily {past}"
        window_hours: 1
"""

T = TypeVar("T")


def await_(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:g} s")


@pytest.fixture
def schedulers(tmp_path: Path, postgres_url: str
               ) -> Iterator[tuple[sessionmaker[Session], dict[str, subprocess.Popen[bytes]]]]:
    """The history (the jobs known for three days) and two schedulers started on it, each
    with its own state folder, as on two machines."""
    from orchestrator.store.keys import generate_private_key

    (tmp_path / "acme.pub").write_text(generate_private_key().public.text() + "\n")
    (tmp_path / "baie-a").mkdir()
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).astimezone(PARIS)  # window open until due + 2 h
    past = (now - timedelta(hours=3)).astimezone(PARIS)  # window closed an hour ago
    configs = []
    for name in ("a", "b"):
        configs.append(write_config(tmp_path, CONFIG.format(
            state=tmp_path / f"state-{name}", url=postgres_url, root=tmp_path,
            due=f"{due:%H:%M}", past=f"{past:%H:%M}"), f"hvbackup-{name}.yaml"))
    engine = open_engine(postgres_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():  # configured three days ago
        sync_config(session, load_config(configs[0]), now - timedelta(days=3), "test")
    procs = {}
    for name, config in zip(("a", "b"), configs, strict=True):
        log = (tmp_path / f"scheduler-{name}.log").open("wb")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli.main", "run", "-c", str(config)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        yield sessions, procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()


def _runs(sessions: sessionmaker[Session]) -> dict[str, list[RunRow]]:
    with sessions() as session:
        rows = session.execute(select(JobRow.key, RunRow).join(JobRow)).all()
    out: dict[str, list[RunRow]] = {}
    for key, run in rows:
        out.setdefault(key, []).append(run)
    return out


def _rows(sessions: sessionmaker[Session]) -> dict[str, SchedulerRow]:
    with sessions() as session:
        return {r.name: r for r in session.scalars(select(SchedulerRow))}


def _duplicate_reports(sessions: sessionmaker[Session]) -> list[tuple[object, ...]]:
    with sessions() as session:
        return [tuple(r) for r in session.execute(
            select(EmailRow.kind, EmailRow.client_id, EmailRow.report_date, func.count())
            .where(EmailRow.kind.in_(("digest", "summary")))  # alerts: one per new problem
            .group_by(EmailRow.kind, EmailRow.client_id, EmailRow.report_date)
            .having(func.count() > 1)).all()]


@pytest.mark.slow
def test_one_scheduler_leads_and_the_other_takes_over_when_it_is_killed(
        schedulers: tuple[sessionmaker[Session], dict[str, subprocess.Popen[bytes]]]) -> None:
    sessions, procs = schedulers
    names = {f"{socket.gethostname()}:{p.pid}": key for key, p in procs.items()}

    def both_seen_one_leading() -> list[str] | None:
        rows = _rows(sessions)
        if set(rows) != set(names):
            return None
        leading = [n for n, r in rows.items() if r.leading_since is not None]
        return leading if len(leading) == 1 else None

    [leader] = await_("both schedulers seen, one leading", both_seen_one_leading, 60)
    [follower] = [n for n in names if n != leader]

    def planned() -> dict[str, list[RunRow]] | None:
        runs = _runs(sessions)
        partages = [r for r in runs.get("partages", []) if r.started_at is not None]
        lent = [r for r in runs.get("lent", []) if r.state == "running"]
        with sessions() as session:
            digests = session.scalar(select(func.count()).select_from(EmailRow)
                                     .where(EmailRow.kind == "digest"))
        ok = (partages and partages[0].status == "REUSSIE" and lent
              and len(runs.get("ancien", [])) >= 3 and digests)
        return runs if ok else None

    runs = await_("the leader's night planned", planned, 120)
    # Only the leader planned: every run it started and every NON EXECUTEE is its own.
    started = [r for rs in runs.values() for r in rs if r.started_at is not None]
    assert {r.claimed_by for r in started} == {leader}
    assert {r.status for r in runs["ancien"]} == {"NON EXECUTEE"}  # today and before
    assert _duplicate_reports(sessions) == []  # one set of reports
    assert _rows(sessions)[follower].leading_since is None

    killed_at = time.monotonic()
    procs[names[leader]].send_signal(signal.SIGKILL)
    procs[names[leader]].wait(timeout=10)

    def took_over() -> SchedulerRow | None:
        row = _rows(sessions)[follower]
        return row if row.leading_since is not None else None

    await_("the follower leads", took_over, 30)
    # Its first cycle as leader plans: the run the killed leader left half done is closed.
    interrupted = await_("the killed leader's run closed by the new leader", lambda: [
        r for r in _runs(sessions)["lent"]
        if r.state == "finished" and r.error_code == "HVB-RUN-INTERRUPTED"], 30)
    assert time.monotonic() - killed_at < 30
    assert len(interrupted) == 1 and leader in (interrupted[0].error_message or "")
    assert _rows(sessions)[leader].leading_since is None  # the header names the new one
    assert _duplicate_reports(sessions) == []
    assert len(_runs(sessions)["partages"]) == len(runs["partages"])  # nothing run twice


def test_a_leader_whose_connection_is_cut_stops_leading_and_the_other_takes_the_lead(
        postgres_url: str) -> None:
    from sqlalchemy import text

    from orchestrator.jobs.leader import AdvisoryLock

    engine = open_engine(postgres_url)
    first, second = AdvisoryLock(engine), AdvisoryLock(engine)
    try:
        assert first.lead() and first.lead()  # it keeps it
        assert not second.lead()
        with engine.connect() as admin:  # the database server ends the leader's session
            cut = admin.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())")).scalars().all()
        assert cut == [True]
        assert not first.lead()  # noticed at once: it plans nothing more
        await_("the other takes the lead", second.lead, 10)
        assert not first.lead()
        second.release()
        assert first.lead()  # released: free at once
    finally:
        first.release()
        second.release()
        engine.dispose()
