"""The server decides from when a job of an agent's site is expected: from its arrival in the
server's configuration. A site whose agent never enrolled is an alert "agent jamais enrôlé" and
its jobs are NON EXECUTEE after their window; an agent enrolled late in the evening still runs
the job the server awaits that night."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.history.models import AlertRow, ClientRow, EmailRow, JobRow, RunRow
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.daemon import Daemon
from tests.agent.served import serve_tls
from tests.agent.test_agent_run import agent_run, central_of, enroll, runs
from tests.agent.test_silent_agent import hotline_logged_in
from tests.dashboard.agents import API

NBSP = "\u00a0"
NNBSP = "\u202f"


def _never_enrolled(ctx: RunContext) -> list[AlertRow]:
    with ctx.sessions() as session:
        return [a for a in session.scalars(select(AlertRow).where(
            AlertRow.kind == "agent_silent")) if (a.details or {}).get("never_enrolled")]


def test_a_site_whose_agent_never_enrolled_is_alerted_and_its_jobs_not_run(
        tmp_path: Path, clock: FrozenClock) -> None:
    central = central_of(tmp_path, clock)  # configured on 23/11/2026 at 10:00 in Paris
    web = hotline_logged_in(central, clock)
    scheduler = FrozenClock(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))  # 30 min: the limit
    daemon = Daemon(RunContext(central.loaded, scheduler, central.sessions))
    daemon.tick()
    assert _never_enrolled(daemon.ctx) == []

    scheduler.set(datetime(2026, 11, 23, 9, 31, tzinfo=UTC))
    daemon.tick()
    [alert] = _never_enrolled(daemon.ctx)
    assert alert.message == (
        f"agent jamais enrôlé{NBSP}: le site ACME, siège de Lyon (acme-siege) a des "
        "sauvegardes configurées depuis le 23/11/2026 à 10:00 mais aucun agent inscrit"
        f"{NNBSP}; elles ne tournent nulle part et sont comptées NON EXECUTEE (inscrire un "
        "agent\u00a0: hvbackup agent token --site acme-siege)")
    with central.sessions() as session:  # in the hotline's alert mail, with its runbook
        mail = session.scalars(select(EmailRow).where(EmailRow.kind == "alert")).one()
    assert mail.outbox_path is not None
    told = Path(mail.outbox_path).read_text(encoding="utf-8", errors="replace")
    assert "acme-siege" in told and "HVB-AGENT-SILENT" in told
    home = web.get("/").text
    assert "agent jamais enrôlé" in home and 'data-status="agent"' in home
    daemon.tick()
    assert len(_never_enrolled(daemon.ctx)) == 1  # told once

    # The night: the central job runs; the site's job is NON EXECUTEE after its 8 h window.
    scheduler.set(datetime(2026, 11, 24, 5, 1, tzinfo=UTC))
    daemon.tick()
    daemon.wait_idle()
    with central.sessions() as session:
        rows = dict(session.execute(select(JobRow.key, RunRow.status).join(
            JobRow, RunRow.job_id == JobRow.id).join(ClientRow)).all())
    assert rows["partages"] == "NON EXECUTEE"

    central.enroll("acme-siege", "srv-acme")  # an agent at last: the alert closes
    daemon.tick()
    [closed] = _never_enrolled(daemon.ctx)
    assert closed.resolved_at is not None
    assert "agent jamais enrôlé" not in web.get("/").text


def test_an_agent_enrolled_late_runs_the_job_the_server_awaits_that_night(
        cli, tmp_path: Path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)  # the job is on the server since 10:00
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        headers = {"Authorization": "Bearer " + (folder / "agent-token").read_text().strip()}
        answer = TestClient(central.app).get(f"{API}/config", headers=headers).json()
        assert answer["expected_since"] == {"acme/partages": "2026-11-23T09:00:00Z"}
        # Its first cycle at 22:05 (Paris): partages was due at 22:00, its window is open.
        first = agent_run(folder, "2026-11-23T21:05:00+00:00")
        assert first.code == 0, first.err
        assert "1 run(s) delivered" in first.out
    [run] = runs(central)
    assert (run.status, run.claimed_by) == ("REUSSIE", "agent:srv-acme")
    assert run.scheduled_for.replace(tzinfo=UTC) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
