"""A scheduler stopped for days records nothing, so nothing in the history says a job did not
run: lateness is computed from each job's schedule and its last run wherever it is shown (the
home page, the client pages, the digest, the API, /metrics), and the dashboard says when the
scheduler was last seen and turns red when it is late."""

from __future__ import annotations

import email
import os
import re
import socket
from datetime import UTC, date, datetime
from email.policy import default
from html import unescape
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.dashboard.auth import create_token
from orchestrator.jobs.daemon import Daemon
from orchestrator.report.digest import send_digest
from tests.dashboard.site import Site, csrf_of
from tests.world import Setup

WHO = f"{socket.gethostname()} (pid {os.getpid()})"  # the scheduler that leads: this test
PASSWORDS = {"marie": "hotline password 1", "acme-it": "acme portal password"}


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def one_good_night_then_the_scheduler_stops(root: Path) -> Setup:
    """The scheduler runs the night of the 23rd and its morning, then is stopped."""
    s = Setup(root, start=utc(23, 19))
    daemon = Daemon(s.ctx)
    for when in (utc(23, 20), utc(23, 21), utc(23, 22), utc(24, 6)):
        s.clock.set(when)
        daemon.tick()
        daemon.wait_idle()
    s.clock.set(utc(27, 9))  # three days later, nobody has restarted it
    return s


def dashboard(s: Setup) -> tuple[TestClient, TestClient]:
    for name, role, client in (("marie", "hotline", None), ("acme-it", "client", "acme")):
        add_user(s.sessions, name, PASSWORDS[name], role, client, "test", s.clock.now())
    return logged_in(s)


def logged_in(s: Setup) -> tuple[TestClient, TestClient]:
    """The hotline's and the client's accounts, logged in now (again after a day: their
    sessions expire)."""
    app = create_app(DashboardSettings(
        sessions=s.sessions, timezone=s.loaded.config.msp.timezone, language="fr",
        now=s.clock.now, secret="a secret for tests", secure_cookies=False))
    out = []
    for name in ("marie", "acme-it"):
        web = TestClient(app, follow_redirects=False)
        assert Site.post_login(web, {"username": name, "password": PASSWORDS[name],
                                        "next": "/"}).status_code == 303
        out.append(web)
    return out[0], out[1]


def rows(home: str) -> dict[str, tuple[str, str]]:
    """job -> (status, what the message cell says), text only."""
    found = {}
    for job, status, body in re.findall(
            r'<tr class="problem" data-client="acme" data-job="([^"]*)" data-status="([^"]*)">'
            r"(.*?)</tr>", home, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
        found[job] = (status, unescape(re.sub(r"<[^>]+>", "", cells[5])).strip())
    return found


def test_a_scheduler_stopped_for_days_shows_on_every_page(tmp_path: Path) -> None:
    s = one_good_night_then_the_scheduler_stops(tmp_path)
    hotline, portal = dashboard(s)

    home = hotline.get("/").text
    assert "Rien à traiter" not in home
    # Every job late because the scheduler is down: one cause, one row (and one in the count).
    assert rows(home) == {}
    [cause] = re.findall(r'<tr class="problem cause"[^>]*>.*?</tr>', home, re.S)
    assert 'data-code="HVB-RUN-MISSED"' in cause and 'data-status="NON EXECUTEE"' in cause
    text = unescape(re.sub(r"<[^>]+>", " ", cause))
    assert "3 tâches, une même cause\u00a0: le planificateur ne tourne pas" in text
    assert "En retard\u00a0: aucune exécution prévue n'a eu lieu depuis le 24/11/2026 21:00" \
        in text
    said = re.search(r'<span class="late-jobs">(.*?)</span>', cause)
    assert said and sorted(said.group(1).split(" · ")) == [
        "compta (3 manquées)", "erp (3 manquées)", "partages (3 manquées)"]  # the first too
    assert "manquées depuis" not in text
    assert '>ACME</a> <span class="muted client-key">acme</span>' in cause  # its name
    assert "Prendre en charge les 3" in cause
    assert re.search(r"<h1>À traiter <span class=\"muted\">\(1\) ", home)
    banner = re.search(r'<span id="scheduler" class="([a-z]+)">([^<]*)</span>', home)
    assert banner and banner.groups() == (
        "late", f"planificateur\u00a0: {WHO}, dernier passage il y a 3 j 3 h")

    own = portal.get("/clients/acme").text
    assert "Rien à traiter" not in own  # the client's portal too
    assert 'id="scheduler"' not in own  # the MSP's machinery is not theirs
    client = portal.get("/clients/acme").text
    assert client.count("en retard depuis le ") == 3
    assert "en retard depuis le 24/11/2026 22:00" in client  # erp, scheduled 22:00

    answer = hotline.post("/clients/acme/jobs/erp/run",
                          data={"csrf": csrf_of(hotline.get("/clients/acme").text)})
    flash = unescape(hotline.get(answer.headers["location"]).text)
    assert ("Lancement demandé, mais aucun planificateur ne tourne (planificateur\u00a0: dernier "
            "passage il y a 3 j 3 h)\u00a0: la tâche ne démarrera qu'au retour de « hvbackup "
            "run ».") in flash

    token = {"Authorization": "Bearer " + create_token(s.sessions, "marie", "t", "test",
                                                        s.clock.now())}
    problems = {p["job"]: p for p in hotline.get("/api/v1/problems", headers=token).json()}
    assert (problems["erp"]["status"], problems["erp"]["missed_runs"],
            problems["erp"]["late_since"]) == ("NON EXECUTEE", 3, "2026-11-24T21:00:00Z")
    detail = hotline.get("/api/v1/clients/acme", headers=token).json()
    assert {j["key"]: j["missed_runs"] for j in detail["jobs"]} == {
        "compta": 3, "erp": 3, "partages": 3}
    [summary] = hotline.get("/api/v1/clients", headers=token).json()
    assert (summary["worst_status"], summary["late_jobs"]) == ("NON EXECUTEE", 3)
    metrics = hotline.get("/metrics", headers=token).text
    assert 'hvbackup_job_late{client="acme",job="erp"} 1' in metrics
    assert 'hvbackup_job_missed_runs{client="acme",job="erp"} 3' in metrics
    assert (f"hvbackup_scheduler_last_seen_timestamp_seconds {utc(24, 6).timestamp():.0f}"
            in metrics)

    # The night of the 26th, reported by hand: every job is there, none ran.
    digest, _email = send_digest(s.loaded, s.sessions, "acme", date(2026, 11, 26),
                                 s.clock.now(), send_it=False)
    eml = (tmp_path / "state" / "outbox" / "2026-11-26-acme-digest.eml").read_bytes()
    msg = email.message_from_bytes(eml, policy=default)
    assert msg["Subject"] == "[NON EXECUTEE] ACME — sauvegardes du 26/11/2026 — 3 non exécutées"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.count("Erreur\u00a0: La sauvegarde n'a pas démarré dans sa plage horaire") == 3
    assert [(j.job, j.status) for j in digest.jobs] == [
        ("compta", "NON EXECUTEE"), ("erp", "NON EXECUTEE"), ("partages", "NON EXECUTEE")]


def test_a_running_scheduler_is_shown_on_time(tmp_path: Path) -> None:
    s = Setup(tmp_path, start=utc(23, 19))
    daemon = Daemon(s.ctx)
    s.clock.set(utc(23, 19, 30))
    daemon.tick()
    hotline, _portal = dashboard(s)
    s.clock.set(utc(23, 19, 31))
    home = hotline.get("/").text
    banner = re.search(r'<span id="scheduler" class="([a-z]+)">([^<]*)</span>', home)
    assert banner and banner.groups() == (
        "ok", f"planificateur\u00a0: {WHO}, dernier passage il y a 0 h 01 min")
    assert 'id="nothing"' in home  # nothing due yet: nothing late


def test_followers_alone_do_not_make_the_header_green(tmp_path: Path) -> None:
    """A follower plans nothing: its beats do not count, the header names the leader that
    stopped and turns red."""
    from orchestrator.jobs.heartbeat import record_beat

    s = Setup(tmp_path, start=utc(23, 19))
    record_beat(s.sessions, "srv-a:101", utc(23, 9), utc(23, 9))  # the leader, then gone
    record_beat(s.sessions, "srv-b:202", utc(23, 9), utc(23, 9), leading=False)
    s.clock.set(utc(23, 19))
    record_beat(s.sessions, "srv-b:202", utc(23, 9), utc(23, 19), leading=False)
    hotline, _portal = dashboard(s)
    banner = re.search(r'<span id="scheduler" class="([a-z]+)">([^<]*)</span>',
                       hotline.get("/").text)
    assert banner and banner.groups() == (
        "late", "planificateur\u00a0: srv-a (pid 101), dernier passage il y a 10 h 00 min")
    record_beat(s.sessions, "srv-b:202", utc(23, 9), utc(23, 19), leading=True)  # takes over
    banner = re.search(r'<span id="scheduler" class="([a-z]+)">([^<]*)</span>',
                       hotline.get("/").text)
    assert banner and banner.groups() == (
        "ok", "planificateur\u00a0: srv-b (pid 202), dernier passage il y a 0 h 00 min")
