""""À traiter" as the hotline reads it: a grouped row keeps the acknowledgements made on an
earlier night's runs of its jobs; late jobs (no run: the scheduler is down) are acknowledged
and relaunched from their row like failed runs, and grouped by their shared cause; the title
counts the rows shown; clients by name; the status filter in words."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.history.models import AcknowledgementRow, AuditRow, JobRow
from orchestrator.jobs.heartbeat import record_beat
from tests.dashboard.site import Site, csrf_of
from tests.dashboard.test_causes import PASSWORDS, _rows, _web
from tests.dashboard.test_scheduler_down import dashboard, one_good_night_then_the_scheduler_stops
from tests.world import Setup


def _again(s: Setup) -> TestClient:
    """marie, logged in anew."""
    app = create_app(DashboardSettings(
        sessions=s.sessions, timezone=s.loaded.config.msp.timezone, language="fr",
        now=s.clock.now, secret="a secret for tests", secure_cookies=False))
    web = TestClient(app, follow_redirects=False)
    assert Site.post_login(web, {"username": "marie", "password": PASSWORDS["marie"],
                                 "next": "/"}).status_code == 303
    return web


def _text(html: str) -> str:
    return re.sub(r"[ \n\t]+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _cause(home: str) -> str:
    [cause] = [r for r in _rows(home) if 'class="problem cause"' in r]
    return cause


def _count(home: str) -> int:
    found = re.search(r"<h1>À traiter <span class=\"muted\">\((\d+)", home)
    assert found, "no count in the title"
    return int(found.group(1))


def test_a_grouped_row_shows_the_acknowledgement_of_the_night_before(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")  # hv01 never answers
    erp = s.run("erp").uid
    s.run("compta")
    web = _web(s, "marie")
    home = web.get("/").text
    answer = web.post(f"/runs/{erp}/acknowledge", data={
        "comment": "hv01 en panne, technicien prévenu", "csrf": csrf_of(home), "next": "/"})
    assert answer.status_code == 303

    s.clock.advance(timedelta(days=1))  # the next night, both jobs fail again
    erp2, compta2 = s.run("erp").uid, s.run("compta").uid
    web = _again(s)  # a new day, a new session (they last 12 hours)
    home = web.get("/").text
    cause = _cause(home)
    assert f'href="/runs/{erp2}"' in cause and f'href="/runs/{compta2}"' in cause  # newest runs
    ack = re.search(r'<td class="ack">(.*?)</td>', cause, re.S)
    assert ack
    text = _text(ack.group(1))
    assert "marie, le " in text and "hv01 en panne, technicien prévenu (erp)" in text
    assert "Prendre en charge l'autre" in text  # compta is not acknowledged yet
    assert f'name="uid" value="{compta2}"' in ack.group(1)
    assert f'name="uid" value="{erp2}"' not in ack.group(1)

    web.post("/runs/acknowledge", data={"uid": [compta2], "comment": "idem",
                                        "csrf": csrf_of(home)})
    cause = _cause(web.get("/").text)
    assert "ack-cause" not in cause  # both acknowledged: no form left
    text = _text(cause)
    assert "hv01 en panne, technicien prévenu" in text and "idem" in text


def test_late_jobs_are_one_cause_acknowledged_once(tmp_path: Path) -> None:
    s = one_good_night_then_the_scheduler_stops(tmp_path)
    hotline, portal = dashboard(s)
    home = hotline.get("/").text
    cause = _cause(home)
    assert _count(home) == 1  # three late jobs, one row
    form = re.search(r'<form class="ack-cause" method="post" action="/jobs/acknowledge">(.*?)'
                     r"</form>", cause, re.S)
    assert form, "no acknowledge form on the late jobs' row"
    jobs = re.findall(r'name="job" value="([^"]+)"', form.group(1))
    assert sorted(jobs) == ["acme/compta", "acme/erp", "acme/partages"]

    refused = portal.post("/jobs/acknowledge", data={
        "job": jobs, "comment": "x", "csrf": csrf_of(portal.get("/clients/acme").text)})
    assert refused.status_code == 403  # a client account does not acknowledge
    answer = hotline.post("/jobs/acknowledge", data={
        "job": jobs, "comment": "planificateur arrêté, redémarrage en cours",
        "csrf": csrf_of(home)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cause = _cause(hotline.get("/").text)
    assert "ack-cause" not in cause
    assert "marie, le 27/11/2026 10:00\u00a0: planificateur arrêté, redémarrage en cours" in \
        _text(cause)
    with s.sessions() as session:
        assert len(session.scalars(select(AcknowledgementRow)).all()) == 3
        assert sorted(session.scalars(select(AuditRow.target).where(
            AuditRow.action == "job.acknowledge"))) == sorted(jobs)

    s.clock.advance(timedelta(hours=6))  # still down later: still acknowledged
    home = hotline.get("/").text
    assert "redémarrage en cours" in _text(_cause(home)) and "ack-cause" not in home


def test_a_late_job_alone_has_its_acknowledge_and_relaunch(tmp_path: Path) -> None:
    s = one_good_night_then_the_scheduler_stops(tmp_path)
    now = s.clock.now()
    with s.sessions() as session, session.begin():  # erp and compta: added today
        for job in session.scalars(select(JobRow).where(JobRow.key.in_(["erp", "compta"]))):
            job.expected_since = now
    record_beat(s.sessions, "scheduler-for-tests:1", now, now)  # the scheduler is back
    hotline, _portal = dashboard(s)
    home = hotline.get("/").text
    [row] = [r for r in _rows(home) if 'data-job="partages"' in r]
    assert 'data-status="NON EXECUTEE"' in row
    # The nights of the 24th, 25th and 26th: three missed, the first of them included.
    assert ("En retard\u00a0: 3 exécutions prévues n'ont pas eu lieu, la première le "
            "24/11/2026 21:00\u202f; le planificateur tourne-t-il\u202f?") in _text(row)
    assert 'action="/jobs/acknowledge"' in row and 'value="acme/partages"' in row
    assert 'action="/clients/acme/jobs/partages/run"' in row and "Relancer" in row
    answer = hotline.post("/jobs/acknowledge", data={
        "job": ["acme/partages"], "comment": "on regarde", "csrf": csrf_of(home)})
    assert answer.status_code == 303
    [row] = [r for r in _rows(hotline.get("/").text) if 'data-job="partages"' in r]
    assert "marie, le 27/11/2026 10:00\u00a0: on regarde" in _text(row)
    assert 'action="/jobs/acknowledge"' not in row


def test_the_filters_say_words_and_the_rows_name_the_client(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    s.run("erp")
    web = _web(s, "marie")
    home = web.get("/").text
    assert '<option value="NON EXECUTEE">Non exécutée</option>' in home
    assert '<option value="ECHEC">Échec</option>' in home
    assert '<option value="acme">ACME</option>' in home
    assert ">NON EXECUTEE</option>" not in home
    [row] = [r for r in _rows(home) if 'data-job="erp"' in r]
    assert '<a href="/clients/acme">ACME</a> <span class="muted client-key">acme</span>' in row
    assert _count(home) == len(_rows(home))
    only = web.get("/", params={"status": "ECHEC"}).text
    assert '<option value="ECHEC" selected>Échec</option>' in only
    assert {re.search(r'data-status="([^"]+)"', r).group(1)  # type: ignore[union-attr]
            for r in _rows(only)} == {"ECHEC"}
