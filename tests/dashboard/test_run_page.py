"""A run's page reads in the viewer's language and says what really failed: a warning is not a
red error box with "None" in it, step names, their states, the trigger and the consistency are
words of the page's language, and an unreachable host is a failed connection, not a failed
sweep."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.history.models import RunRow
from tests.dashboard.site import Site
from tests.world import Setup


def _hotline(s: Setup) -> TestClient:
    settings = DashboardSettings(sessions=s.sessions, timezone=s.loaded.config.msp.timezone,
                                 language="fr", now=s.clock.now, secret="a secret for tests",
                                 secure_cookies=False)
    add_user(s.sessions, "marie", "hotline password 1", "hotline", None, "test", s.clock.now())
    web = TestClient(create_app(settings), follow_redirects=False)
    assert Site.post_login(web, {"username": "marie", "password": "hotline password 1"}
                           ).status_code == 303
    return web


def test_a_warning_run_in_french(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}",
              consistency="application-or-crash")
    uid = s.run("erp").uid
    with s.sessions() as session, session.begin():  # a warning whose finding has no code
        session.scalars(select(RunRow)).one().error_code = None
    whole = html.unescape(_hotline(s).get(f"/runs/{uid}").text)
    page = whole.split('id="log"')[0]  # the log is the hotline's technical record
    assert 'id="run-status">AVERTISSEMENT' in page
    assert 'class="warning" id="run-error"' in page and "None" not in page
    assert "Déclenchement : planifié" in page
    assert "Cohérence : sans VSS (crash-consistent)" in page
    for english in ("sweep leftovers", "remove checkpoint", "commit snapshot", ">ok<",
                    ": schedule"):
        assert english not in page, english
    assert "nettoyage des restes" in page and "point de contrôle" in page
    assert ">réussie<" in page


def test_an_unreachable_host_is_a_failed_connection(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    uid = s.run("erp").uid
    assert [(n, st) for n, _o, st in s.steps(uid)] == [("connect", "failed")]
    page = html.unescape(_hotline(s).get(f"/runs/{uid}").text).split('id="log"')[0]
    assert "connexion à l'hôte" in page and "nettoyage" not in page
