"""A dashboard over a real history: ACME's runs made by the simulated host (one night good,
the next one with the host unreachable), a second client DURAND with a failed run of its own,
and three accounts: marie (hotline), acme-it and durand-it (client portals)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.dashboard.auth import create_token
from orchestrator.history.models import ClientRow, JobRow, RunRow, RunState
from orchestrator.jobs.heartbeat import record_beat
from tests.world import Setup

PASSWORDS = {"marie": "hotline password 1", "acme-it": "acme portal password",
             "durand-it": "durand portal password"}


class Site:
    def __init__(self, root: Path, *, secure_cookies: bool = False) -> None:
        self.s = Setup(root, faults="{kind: unreachable, dates: [2026-11-24]}")
        self.clock = self.s.clock
        self.sessions = self.s.sessions
        self.good = self.s.run("partages")
        self.clock.advance(timedelta(days=1))
        self.failed = self.s.run("partages")
        assert self.failed.status == "ECHEC"
        self.durand_run = self._other_client()
        now = self.clock.now()
        with self.sessions() as session, session.begin():  # added today: nothing due yet
            for job in session.scalars(select(JobRow).where(JobRow.key.in_(["erp", "compta"]))):
                job.expected_since = now
        record_beat(self.sessions, "scheduler-for-tests:1", now, now)  # a scheduler runs
        add_user(self.sessions, "marie", PASSWORDS["marie"], "hotline", None, "test", now)
        add_user(self.sessions, "acme-it", PASSWORDS["acme-it"], "client", "acme", "test", now)
        add_user(self.sessions, "durand-it", PASSWORDS["durand-it"], "client", "durand", "test",
                 now)
        self.settings = DashboardSettings(
            sessions=self.sessions, timezone=ZoneInfo("Europe/Paris"), language="fr",
            now=self.clock.now, secret="a test secret for signing cookies",
            secure_cookies=secure_cookies)
        self.app = create_app(self.settings)

    def _other_client(self) -> str:
        """DURAND, straight into the history: a job whose last run failed."""
        now = self.clock.now()
        with self.sessions() as session, session.begin():
            client = ClientRow(key="durand", name="DURAND SA", language="fr", quota_bytes=None)
            session.add(client)
            session.flush()
            job = JobRow(client_id=client.id, key="serveurs", type="hyperv-vm", host="hyperv1",
                         schedule="daily 23:00", window_hours=8, copies=["site-a"])
            session.add(job)
            session.flush()
            session.add(RunRow(uid="202611242200-d0d0d0", job_id=job.id, trigger="schedule",
                               scheduled_for=now - timedelta(hours=2),
                               state=RunState.FINISHED.value, status="ECHEC",
                               started_at=now - timedelta(hours=2), finished_at=now,
                               error_code="HVB-HOST-UNREACHABLE",
                               error_message="DURAND-SECRET-MESSAGE: hyperv1 does not answer"))
        return "202611242200-d0d0d0"

    def browser(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    @staticmethod
    def post_login(web: TestClient, data: dict[str, str]) -> Any:
        """The login form as a browser sends it: fetched first, with its CSRF token."""
        form = web.get("/login")
        return web.post("/login", data={**data, "csrf": csrf_of(form.text)})

    def login(self, username: str) -> TestClient:
        web = self.browser()
        form = web.get("/login")
        answer = web.post("/login", data={"username": username, "password": PASSWORDS[username],
                                          "next": "/", "csrf": csrf_of(form.text)})
        assert answer.status_code == 303, answer.text
        return web

    def token(self, username: str) -> dict[str, str]:
        value = create_token(self.sessions, username, "tests", "test", self.clock.now())
        return {"Authorization": f"Bearer {value}"}

    def job_id(self, client: str, job: str) -> int:
        with self.sessions() as session:
            return session.scalars(select(JobRow.id).join(ClientRow).where(
                ClientRow.key == client, JobRow.key == job)).one()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
