"""Problems that share a cause (one host unreachable, its jobs failing alike) are one row on
"À traiter", acknowledged once for all; a failed run's row has its own acknowledge and
"relancer" (run now), staff only, with the CSRF token, as quota alerts already had."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.history.models import AcknowledgementRow, AuditRow, RunRequestRow
from tests.dashboard.site import csrf_of
from tests.world import Setup

PASSWORDS = {"marie": "hotline password 1", "acme-it": "acme portal password"}


def _web(s: Setup, name: str) -> TestClient:
    role, client = ("hotline", None) if name == "marie" else ("client", "acme")
    add_user(s.sessions, name, PASSWORDS[name], role, client, "test", s.clock.now())
    app = create_app(DashboardSettings(
        sessions=s.sessions, timezone=s.loaded.config.msp.timezone, language="fr",
        now=s.clock.now, secret="a secret for tests", secure_cookies=False))
    web = TestClient(app, follow_redirects=False)
    form = web.get("/login").text
    assert web.post("/login", data={"username": name, "password": PASSWORDS[name],
                                    "next": "/", "csrf": csrf_of(form)}).status_code == 303
    return web


def _rows(home: str) -> list[str]:
    return re.findall(r'<tr class="problem[^"]*".*?</tr>', home, re.S)


def test_one_host_down_is_one_row_acknowledged_once(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    erp, compta = s.run("erp").uid, s.run("compta").uid
    web = _web(s, "marie")
    home = web.get("/").text
    [cause] = [r for r in _rows(home) if 'class="problem cause"' in r]
    assert 'data-host="hv01" data-code="HVB-HOST-UNREACHABLE"' in cause
    text = unescape(re.sub(r"<[^>]+>", " ", cause))
    assert "2 tâches, une même cause\u00a0: hv01 (HVB-HOST-UNREACHABLE)" in text
    assert re.search(r"\berp\b", text) and re.search(r"\bcompta\b", text)
    assert not [r for r in _rows(home) if 'data-job="erp"' in r or 'data-job="compta"' in r]
    assert "Prendre en charge les 2" in cause

    refused = web.post("/runs/acknowledge", data={"uid": [erp, compta], "comment": "x"})
    assert refused.status_code in (400, 403)  # no CSRF token
    answer = web.post("/runs/acknowledge", data={
        "uid": [erp, compta], "comment": "hv01 en panne, technicien prévenu",
        "csrf": csrf_of(home)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    [cause] = [r for r in _rows(web.get("/").text) if 'class="problem cause"' in r]
    assert "marie, le " in cause and "hv01 en panne, technicien prévenu" in unescape(cause)
    assert "ack-cause" not in cause
    with s.sessions() as session:
        assert len(session.scalars(select(AcknowledgementRow)).all()) == 2
        assert session.scalars(select(AuditRow.actor).where(
            AuditRow.action == "run.acknowledge")).all() == ["web:marie", "web:marie"]


def test_a_failed_run_is_acknowledged_and_relaunched_from_its_row(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    uid = s.run("erp").uid
    web = _web(s, "marie")
    home = web.get("/").text
    [row] = [r for r in _rows(home) if 'data-job="erp"' in r]
    assert "1 exécution<" in row and "exécutions" not in row  # one run: singular
    assert f'action="/runs/{uid}/acknowledge"' in row
    assert 'action="/clients/acme/jobs/erp/run"' in row and "Relancer" in row

    again = web.post("/clients/acme/jobs/erp/run", data={"csrf": csrf_of(home), "next": "/"})
    assert again.status_code == 303 and again.headers["location"].startswith("/?flash=")
    with s.sessions() as session:
        assert session.scalars(select(RunRequestRow.requested_by)).all() == ["marie"]
    shown = web.get(again.headers["location"]).text
    assert 'id="flash"' in shown

    answer = web.post(f"/runs/{uid}/acknowledge", data={
        "comment": "relancée, on surveille", "csrf": csrf_of(home), "next": "/"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    [row] = [r for r in _rows(web.get("/").text) if 'data-job="erp"' in r]
    assert "marie, le " in row and "relancée, on surveille" in unescape(row)
    evil = web.post(f"/runs/{uid}/acknowledge", data={
        "comment": "x", "csrf": csrf_of(home), "next": "//evil.example/"})
    assert evil.headers["location"] == "/"  # never an open redirect


def test_a_client_account_cannot_acknowledge_a_cause(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    erp, compta = s.run("erp").uid, s.run("compta").uid
    web = _web(s, "acme-it")
    page = web.get("/clients/acme").text
    answer = web.post("/runs/acknowledge", data={"uid": [erp, compta], "comment": "x",
                                                 "csrf": csrf_of(page)})
    assert answer.status_code == 403
    with s.sessions() as session:
        assert session.scalars(select(AcknowledgementRow)).all() == []
