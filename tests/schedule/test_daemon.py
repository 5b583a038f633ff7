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

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from orchestrator.history.models import JobRow, RunRow
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.daemon import Daemon
from tests.conftest import REPO
from tests.world import Setup


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
    with s.sessions() as session:  # what a run found, should one not be REUSSIE
        found = [(r.uid, r.status, r.findings) for r in session.scalars(select(RunRow))]
    assert set(statuses(s).values()) == {"REUSSIE"}, found
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


class _Monitor:
    """A healthchecks-like monitor on loopback: records the paths it was pinged on."""

    def __init__(self) -> None:
        import http.server

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ping/3f1c"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_heartbeat_after_each_cycle_and_fail_when_the_cycle_failed(tmp_path: Path) -> None:
    monitor = _Monitor()
    try:
        s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
        text = s.config.read_text().replace(
            "  hotline: [hotline@msp.example]",
            f"  hotline: [hotline@msp.example]\n  heartbeat_url: {monitor.url}")
        s.config.write_text(text)
        s.reload()
        daemon = Daemon(s.ctx, max_workers=1)
        assert daemon.cycle() is True
        daemon.wait_idle()
        assert monitor.hits == ["/ping/3f1c"]
        # The history database becomes unreachable (a disk unmounted, a server down).
        s.ctx.sessions = sessionmaker(create_engine(f"sqlite:///{tmp_path}/gone/history.db"))
        assert daemon.cycle() is False  # logged, not raised: the daemon lives on
        assert monitor.hits == ["/ping/3f1c", "/ping/3f1c/fail"]
    finally:
        monitor.close()


def test_sighup_reloads_the_configuration_and_keeps_the_old_one_when_broken(
        tmp_path: Path) -> None:
    s = Setup(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run", "-c",
                             str(s.config)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert "3 job(s)" in proc.stdout.readline()
        time.sleep(1.0)
        good = s.config.read_text()
        s.config.write_text(good.replace("      partages:\n", "      partages2:\n        "
                                         "type: files\n        host: hv01\n        paths: "
                                         "['D:\\\\Partages']\n        schedule: \"daily 04:00\"\n"
                                         "      partages:\n"))
        proc.send_signal(signal.SIGHUP)
        assert "SIGHUP" in proc.stdout.readline()
        for _ in range(100):
            with s.sessions() as session:
                if session.scalars(select(JobRow).where(JobRow.key == "partages2")).first():
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the new job never reached the history")
        s.config.write_text(good.replace("version: 1", "version: 7"))
        proc.send_signal(signal.SIGHUP)
        assert "SIGHUP" in proc.stdout.readline()
        time.sleep(2.0)
        assert proc.poll() is None  # still running, on the previous configuration
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "configuration reloaded" in err and "4 job(s)" in err
    assert "configuration not reloaded, the previous one stays in use" in err
    assert "version" in err.split("configuration not reloaded")[1]


def test_a_scheduler_down_for_days_records_every_night_it_missed(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))  # down from the 23rd to the 26th
    daemon = Daemon(s.ctx)
    daemon.tick()
    daemon.wait_idle()
    missed = {k for k, v in statuses(s).items() if v == "NON EXECUTEE"}
    assert missed == {(job, f"{day} {hour}") for day in (23, 24, 25)
                      for job, hour in (("partages", "20:00"), ("erp", "21:00"),
                                        ("compta", "22:00"))}


def test_a_changed_schedule_expects_nothing_before_the_change(tmp_path: Path) -> None:
    from orchestrator.config import load_config

    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 23, 22, 50, tzinfo=UTC))
    daemon = Daemon(s.ctx, reload=lambda: load_config(s.config))
    while daemon.tick():
        daemon.wait_idle()
    assert statuses(s)[("erp", "23 21:00")] == "REUSSIE"
    # The technician moves erp from 22:00 to 23:30 (Paris) after tonight's run.
    s.config.write_text(s.config.read_text().replace('schedule: "daily 22:00"',
                                                     'schedule: "daily 23:30"'))
    daemon.ask_reload()
    daemon.cycle()
    daemon.wait_idle()
    s.clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    daemon.tick()
    daemon.wait_idle()
    erp = {k: v for k, v in statuses(s).items() if k[0] == "erp"}
    assert erp == {("erp", "23 21:00"): "REUSSIE"}  # no NON EXECUTEE at 22:30 UTC the 23rd


def test_reports_of_mornings_the_scheduler_missed_go_out_late_and_the_hotline_is_told(
        tmp_path: Path) -> None:
    from orchestrator.history.models import AlertRow, EmailRow

    s = Setup(tmp_path, start=datetime(2026, 11, 22, 8, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 22, 22, 50, tzinfo=UTC))
    daemon = Daemon(s.ctx)
    while daemon.tick():  # the night of the 22nd runs
        daemon.wait_idle()
    daemon.wait_idle()
    s.clock.set(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))  # down over two mornings
    daemon.tick()
    daemon.wait_idle()
    with s.sessions() as session:
        digests = sorted(e.report_date.isoformat() for e in session.scalars(
            select(EmailRow).where(EmailRow.kind == "digest")) if e.report_date)
        alerts = sorted(a.message for a in session.scalars(
            select(AlertRow).where(AlertRow.kind == "report_missing")))
    assert digests == ["2026-11-22", "2026-11-23"]  # both nights reported, none forgotten
    assert len(alerts) == 2
    assert alerts[0].startswith("the report of 22/11/2026 went out to ACME late, on "
                                "24/11/2026 at 10:30 (deadline 08:00)")
    daemon.tick()  # told once
    with s.sessions() as session:
        assert session.scalars(select(func.count()).select_from(EmailRow).where(
            EmailRow.kind == "digest")).one() == 2


class _Maintenances:
    def __init__(self) -> None:
        self.days: list[datetime] = []

    def started(self, *args: object) -> None: ...
    def finished(self, *args: object) -> None: ...
    def missed(self, *args: object) -> None: ...
    def told(self, *args: object) -> None: ...

    def maintained(self, when: datetime, done: object) -> None:
        self.days.append(when)


def test_a_scheduler_taking_over_in_the_afternoon_does_not_maintain_the_day_again(
        tmp_path: Path) -> None:
    """The day's maintenance (retention, prune, destruction) ran on the first scheduler; a
    second one that leads later that day (the first stopped) does not run it again, and does
    the next day."""
    s = Setup(tmp_path, start=datetime(2026, 11, 24, 10, 30, tzinfo=UTC))  # 11:30 in Paris
    first, second = _Maintenances(), _Maintenances()
    one = Daemon(RunContext(s.loaded, s.clock, s.sessions), listener=first)  # type: ignore[arg-type]
    one.tick()
    one.wait_idle()
    assert len(first.days) == 1
    s.clock.set(datetime(2026, 11, 24, 14, 0, tzinfo=UTC))
    two = Daemon(RunContext(s.loaded, s.clock, s.sessions), listener=second)  # type: ignore[arg-type]
    two.tick()
    two.wait_idle()
    assert second.days == []
    s.clock.set(datetime(2026, 11, 25, 10, 30, tzinfo=UTC))
    two.tick()
    two.wait_idle()
    assert len(second.days) == 1
