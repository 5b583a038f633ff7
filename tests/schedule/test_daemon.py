"""The scheduler: due runs start (late if needed, one per host at a time), missed windows are
recorded NON EXECUTEE, two daemons never run a job twice, SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from orchestrator.history.models import JobRow, RunRow
from orchestrator.jobs.run import RunContext
from orchestrator.schedule.daemon import Daemon
from tests.conftest import REPO
from tests.jobs.test_run import Setup


def statuses(s: Setup) -> dict[tuple[str, str], str | None]:
    with s.sessions() as session:
        rows = session.execute(select(JobRow.key, RunRow.scheduled_for, RunRow.status)
                               .join(JobRow)).all()
    return {(key, f"{when:%d %H:%M}"): status for key, when, status in rows}


def test_due_runs_start_one_per_host_then_the_next(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 23, 21, 5, tzinfo=UTC))  # 22:05 in Paris
    daemon = Daemon(s.ctx, max_workers=2)
    first = daemon.tick()
    daemon.wait_idle()
    assert [d.ref.job_name for d in first] == ["partages"]  # 21:00 first; erp waits (same host)
    second = daemon.tick()
    daemon.wait_idle()
    assert [d.ref.job_name for d in second] == ["erp"]
    assert statuses(s) == {("partages", "23 20:00"): "REUSSIE", ("erp", "23 21:00"): "REUSSIE"}
    assert daemon.tick() == []  # nothing twice


def test_missed_windows_are_recorded_non_executee(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))  # the orchestrator was down
    daemon = Daemon(s.ctx)
    started = daemon.tick()
    daemon.wait_idle()
    assert started == []
    result = statuses(s)
    assert result[("erp", "23 21:00")] == "NON EXECUTEE"
    assert result[("compta", "23 22:00")] == "NON EXECUTEE"
    with s.sessions() as session:
        message = session.scalars(select(RunRow.error_message)).first()
    assert message and "did not start before the end of its window" in message


def test_two_daemons_never_run_a_job_twice(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 23, 22, 10, tzinfo=UTC))
    twins = [Daemon(RunContext(s.loaded, s.clock, s.sessions)) for _ in range(2)]
    for _round in range(3):
        threads = [threading.Thread(target=d.tick) for d in twins]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in twins:
            d.wait_idle()
    with s.sessions() as session:
        counts = session.execute(select(RunRow.job_id, RunRow.scheduled_for, func.count())
                                 .group_by(RunRow.job_id, RunRow.scheduled_for)).all()
    assert counts and all(n == 1 for _job, _when, n in counts)
    assert set(statuses(s).values()) == {"REUSSIE"}
    assert len(counts) == 3  # partages 21:00, erp 22:00, compta 23:00


def test_sigterm_stops_the_daemon(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run", "-c",
                             str(s.config)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "hvbackup scheduler: 3 job(s)" in line
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping after the runs in progress" in out and "stopped" in out


def test_nothing_is_expected_before_a_job_exists(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 23, 30, tzinfo=UTC))  # added at 00:30
    s.clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    Daemon(s.ctx).tick()
    assert statuses(s) == {}


def test_watchdog_closes_a_run_that_never_finished(tmp_path: Path) -> None:
    from orchestrator.history.models import RunState

    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    with s.sessions() as session, session.begin():
        job = session.scalars(select(JobRow).where(JobRow.key == "erp")).one()
        session.add(RunRow(uid="lost", job_id=job.id, scheduled_for=datetime(
            2026, 11, 23, 21, 0, tzinfo=UTC), window_ends_at=datetime(2026, 11, 24, 5, 0,
                                                                       tzinfo=UTC),
            state=RunState.RUNNING.value, claimed_by="other-host:4242"))
    s.clock.set(datetime(2026, 11, 24, 6, 30, tzinfo=UTC))
    Daemon(s.ctx).tick()
    with s.sessions() as session:
        run = session.scalars(select(RunRow).where(RunRow.uid == "lost")).one()
    assert (run.status, run.error_code) == ("ECHEC", "HVB-RUN-INTERRUPTED")
