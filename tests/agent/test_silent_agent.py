"""An agent silent past its site's heartbeat_minutes is an alert "agent injoignable depuis
...", recorded once, on the hotline's "À traiter" and in its alert message, and closed when the
agent is heard again (docs/agents.md, runbook HVB-AGENT-SILENT)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.dashboard.accounts import add_user
from orchestrator.history.models import AlertRow, EmailRow
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.daemon import Daemon
from tests.agent.served import serve_tls
from tests.agent.test_agent_run import agent_run, central_of, enroll
from tests.dashboard.agents import Central
from tests.dashboard.site import csrf_of

NBSP = "\u00a0"


def _alerts(ctx: RunContext) -> list[AlertRow]:
    with ctx.sessions() as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.kind == "agent_silent")))


def _home(web: TestClient) -> str:
    page = web.get("/")
    assert page.status_code == 200
    return page.text


def hotline_logged_in(central: Central, clock: FrozenClock) -> TestClient:
    """A hotline account on the central server's dashboard, logged in."""
    add_user(central.sessions, "marie", "hotline password 1", "hotline", None, "test",
             clock.now())
    web = TestClient(central.app, follow_redirects=False)
    form = web.get("/login")
    assert web.post("/login", data={"username": "marie", "password": "hotline password 1",
                                    "next": "/", "csrf": csrf_of(form.text)}
                    ).status_code == 303
    return web


def test_a_silent_agent_is_alerted_once_and_closed_when_it_is_back(
        cli, tmp_path: Path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)  # clock: 23/11/2026 09:00 UTC, 10:00 in Paris
    web = hotline_logged_in(central, clock)
    folder = tmp_path / "agent"
    scheduler = FrozenClock(clock.now())
    daemon = Daemon(RunContext(central.loaded, scheduler, central.sessions))
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T09:00:00+00:00").code == 0  # heard at 10:00

        scheduler.set(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))  # 30 min: the site's limit
        daemon.tick()
        assert _alerts(daemon.ctx) == []

        scheduler.set(datetime(2026, 11, 23, 9, 31, tzinfo=UTC))
        daemon.tick()
        [alert] = _alerts(daemon.ctx)
        assert alert.message.startswith(
            f"agent injoignable depuis le 23/11/2026 à 10:00{NBSP}: srv-acme (site ACME, "
            f"siège de Lyon) n'a pas donné de nouvelles depuis 31{NBSP}min")
        with central.sessions() as session:  # the hotline's alert message carries it
            mail = session.scalars(select(EmailRow).where(EmailRow.kind == "alert")).one()
        assert mail.outbox_path is not None
        told = Path(mail.outbox_path).read_text(encoding="utf-8", errors="replace")
        assert "srv-acme" in told and "HVB-AGENT-SILENT" in told
        home = _home(web)
        assert "agent injoignable depuis le 23/11/2026" in home
        assert 'data-client="acme"' in home and 'data-status="agent"' in home

        acked = web.post(f"/alerts/{alert.id}/acknowledge",
                         data={"comment": "appelé le client", "csrf": csrf_of(home)})
        assert acked.status_code == 303, acked.text
        assert "appelé le client" in _home(web)

        for minutes in (40, 50):  # still silent: still one alert, told once
            scheduler.set(datetime(2026, 11, 23, 9, minutes, tzinfo=UTC))
            daemon.tick()
        assert len(_alerts(daemon.ctx)) == 1
        with central.sessions() as session:
            assert len(session.scalars(select(EmailRow).where(EmailRow.kind == "alert"))
                       .all()) == 1

        clock.set(datetime(2026, 11, 23, 9, 55, tzinfo=UTC))  # the agent is back
        assert agent_run(folder, "2026-11-23T09:55:00+00:00").code == 0
        scheduler.set(datetime(2026, 11, 23, 9, 56, tzinfo=UTC))
        daemon.tick()
        [closed] = _alerts(daemon.ctx)
        assert closed.resolved_at is not None
        assert "agent injoignable" not in _home(web)

        scheduler.set(datetime(2026, 11, 23, 9, 56, tzinfo=UTC) + timedelta(minutes=31))
        daemon.tick()  # silent again: a new alert
        assert [a.resolved_at is None for a in _alerts(daemon.ctx)] == [False, True]
