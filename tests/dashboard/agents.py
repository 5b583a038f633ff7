"""The central server of the two-site configuration (tests/config/two_sites.py): its history,
its dashboard app with the agent API, and agents enrolled for either site."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from orchestrator.agent.registry import create_enrollment
from orchestrator.clock import FrozenClock
from orchestrator.config.load import LoadedConfig, load_config
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.history.db import open_engine, upgrade
from orchestrator.jobs.context import open_context
from tests.config.two_sites import write_two_sites

API = "/api/agent/v1"


class Central:
    def __init__(self, folder: Path, clock: FrozenClock, database: str | None = None,
                 config: Path | None = None) -> None:
        self.clock = clock
        path = config or write_two_sites(folder)
        if database is not None:
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace(f"sqlite:///{folder / 'history.db'}", database),
                            encoding="utf-8")
        self.path = path
        self.loaded: LoadedConfig = load_config(path)
        engine = open_engine(self.loaded.database_url)
        upgrade(engine)
        engine.dispose()
        self.sessions = open_context(self.loaded, clock, "test").sessions
        self.settings = DashboardSettings(
            sessions=self.sessions, timezone=ZoneInfo("Europe/Paris"), language="fr",
            now=clock.now, secret="a test secret for signing cookies", secure_cookies=False,
            config=self.loaded)
        self.app = create_app(self.settings)
        self.web = TestClient(self.app)

    def enrollment(self, site: str, hours: float = 24) -> str:
        token, _expires = create_enrollment(self.sessions, site, hours, "test", self.clock.now())
        return token

    def enroll(self, site: str, name: str) -> dict[str, str]:
        """An agent of ``site`` enrolled through the API: its Authorization header."""
        answer = self.web.post(f"{API}/enroll", json={
            "token": self.enrollment(site), "name": name, "version": "1.0.0"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["site"] == site
        return {"Authorization": f"Bearer {answer.json()['agent_token']}"}


def a_run(uid: str, client: str, job: str, **extra: Any) -> dict[str, Any]:
    """A finished run as an agent delivers it: two steps, three log lines, its figures."""
    start = "2026-11-22T21:00:00+00:00"
    run: dict[str, Any] = {
        "uid": uid, "client": client, "job": job, "scheduled_for": start,
        "window_ends_at": "2026-11-23T05:00:00+00:00", "started_at": start,
        "finished_at": "2026-11-22T21:42:00+00:00", "status": "REUSSIE",
        "consistency": "application", "bytes_read": 40_000_000_000,
        "bytes_new": 1_200_000_000, "bytes_sent": 700_000_000, "files": 3,
        "steps": [
            {"seq": 1, "name": "checkpoint", "object": "ERP01", "status": "ok",
             "started_at": start, "finished_at": "2026-11-22T21:01:00+00:00"},
            {"seq": 2, "name": "upload", "object": "ERP01", "status": "ok",
             "started_at": "2026-11-22T21:01:00+00:00",
             "finished_at": "2026-11-22T21:41:00+00:00", "bytes_read": 40_000_000_000,
             "bytes_new": 1_200_000_000, "bytes_sent": 700_000_000},
        ],
        "events": [
            {"at": start, "level": "INFO", "message": "production checkpoint of ERP01 taken",
             "step_seq": 1},
            {"at": "2026-11-22T21:41:00+00:00", "level": "INFO",
             "message": "ERP01: 1.2 GB new, 700 MB sent", "step_seq": 2},
            {"at": "2026-11-22T21:42:00+00:00", "level": "INFO", "message": "run finished"},
        ],
    }
    run.update(extra)
    return run


def later(clock: FrozenClock, hours: float) -> None:
    clock.advance(timedelta(hours=hours))
