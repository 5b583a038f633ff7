"""The dashboard over HTTP: what the hotline sees and does, what a client may not see, what
other tools read (API, metrics), and the protections (login, throttling, CSRF, sessions)."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.accounts import set_password
from orchestrator.history.models import AcknowledgementRow, AuditRow, RunRequestRow, RunRow
from orchestrator.jobs.daemon import Daemon
from tests.dashboard.site import PASSWORDS, Site, csrf_of


def _audit(site: Site, action: str) -> list[AuditRow]:
    with site.sessions() as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action)))


def test_pages_need_a_login_and_a_wrong_password_is_refused(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.browser()
    answer = web.get("/clients/acme")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fclients%2Facme"
    bad = site.post_login(web, {"username": "marie", "password": "not it"})
    assert bad.status_code == 401
    assert "Identifiant ou mot de passe incorrect" in bad.text
    assert [a.target for a in _audit(site, "login.failed")] == ["marie"]
    # After login, back where the person was going, never to another site.
    good = site.post_login(web, {"username": "marie", "password": PASSWORDS["marie"],
                                    "next": "/clients/acme"})
    assert good.headers["location"] == "/clients/acme"
    other = site.post_login(site.browser(), {
        "username": "marie", "password": PASSWORDS["marie"], "next": "//evil.example/"})
    assert other.headers["location"] == "/"


def test_login_throttled_after_five_failures_then_free_again(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.browser()
    for _ in range(5):
        assert site.post_login(web, {"username": "marie", "password": "guess"}
                        ).status_code == 401
    locked = site.post_login(web, {"username": "marie", "password": PASSWORDS["marie"]})
    assert locked.status_code == 429
    assert "Trop d'essais. Réessayez dans 15 min." in html.unescape(locked.text)
    site.clock.advance(timedelta(minutes=15))
    assert site.post_login(web, {"username": "marie", "password": PASSWORDS["marie"]}
                    ).status_code == 303


def test_home_lists_failures_worst_first_with_filters(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("marie")
    home = web.get("/")
    assert home.status_code == 200
    assert '<meta http-equiv="refresh"' in home.text
    rows = home.text.split('class="problem"')[1:]
    assert len(rows) == 2  # both ECHEC, the one failing for longer first
    assert 'data-client="durand" data-job="serveurs" data-status="ECHEC"' in rows[0]
    assert 'data-client="acme" data-job="partages" data-status="ECHEC"' in rows[1]
    acme = rows[1]
    assert "1 exécution<" in acme
    assert "hv01" in acme  # the one-line error names the host
    assert f"/runs/{site.failed.uid}" in acme
    assert "24 h 00 min" in acme  # age of the last success, the night before
    only_durand = web.get("/?client=durand").text
    assert 'data-client="durand"' in only_durand and 'data-client="acme"' not in only_durand
    by_baie = web.get("/?baie=site-b").text  # durand copies to site-a only
    assert 'data-client="acme"' in by_baie and 'data-client="durand"' not in by_baie
    english = web.get("/?lang=en")
    assert "To handle" in english.text and "1 run<" in english.text
    assert "hvbackup_lang=en" in english.headers["set-cookie"]


def test_run_page_and_acknowledgement_audited(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("marie")
    page = web.get(f"/runs/{site.failed.uid}")
    assert page.status_code == 200
    assert 'id="run-status">ECHEC' in page.text
    assert "HVB-HOST-UNREACHABLE" in page.text
    assert page.text.count('class="step"') >= 1
    assert "started (schedule)" in page.text  # the log
    forged = web.post(f"/runs/{site.failed.uid}/acknowledge",
                      data={"comment": "vu", "csrf": "forged"})
    assert forged.status_code == 403
    empty = web.post(f"/runs/{site.failed.uid}/acknowledge",
                     data={"comment": "   ", "csrf": csrf_of(page.text)})
    assert empty.status_code == 400 and "Un commentaire est nécessaire" in empty.text
    ok = web.post(f"/runs/{site.failed.uid}/acknowledge",
                  data={"comment": "client prévenu, hôte en maintenance",
                        "csrf": csrf_of(page.text)})
    assert ok.status_code == 303
    with site.sessions() as session:
        assert [a.comment for a in session.scalars(select(AcknowledgementRow))] == [
            "client prévenu, hôte en maintenance"]
    [audit] = _audit(site, "run.acknowledge")
    assert (audit.actor, audit.target) == ("web:marie", site.failed.uid)
    home = web.get("/").text
    assert "marie, le 24/11/2026 22:00\u00a0: client prévenu, hôte en maintenance" in home


def test_client_account_sees_only_its_own_client(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("acme-it")
    assert web.get("/").headers["location"] == "/clients/acme"  # its own page, not "À traiter"
    home = web.get("/clients/acme").text
    assert "acme" in home and "durand" not in home.lower()
    assert web.get("/clients").headers["location"] == "/clients/acme"
    assert web.get("/clients/acme").status_code == 200
    for path in ("/clients/durand", "/clients/durand/jobs/serveurs",
                 f"/runs/{site.durand_run}"):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert "DURAND" not in answer.text
    own = web.get(f"/runs/{site.failed.uid}")
    assert own.status_code == 200 and 'id="ack-form"' not in own.text
    refused = web.post(f"/runs/{site.failed.uid}/acknowledge",
                       data={"comment": "x", "csrf": csrf_of(own.text)})
    assert refused.status_code == 403
    assert web.post("/clients/durand/jobs/serveurs/run",
                    data={"csrf": csrf_of(own.text)}).status_code == 404
    # The same line holds for the API and the metrics, with the session or a token.
    for auth in ({}, site.token("acme-it")):
        api = site.browser() if auth else web
        assert [c["key"] for c in api.get("/api/v1/clients", headers=auth).json()] == ["acme"]
        for path in ("/api/v1/clients/durand", "/api/v1/clients/durand/jobs/serveurs/runs",
                     f"/api/v1/runs/{site.durand_run}", "/api/v1/problems?client=durand"):
            answer = api.get(path, headers=auth)
            assert answer.status_code == 404, path
            assert "DURAND-SECRET" not in answer.text
        problems = api.get("/api/v1/problems", headers=auth).json()
        assert {p["client"] for p in problems} == {"acme"}
        metrics = api.get("/metrics", headers=auth).text
        assert 'client="acme"' in metrics and "durand" not in metrics


def test_api_tokens_openapi_and_runs(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.browser()
    assert web.get("/api/v1/problems").status_code == 401
    assert web.get("/api/v1/problems",
                   headers={"Authorization": "Bearer hvb_not-a-token"}).status_code == 401
    auth = site.token("marie")
    problems = web.get("/api/v1/problems", headers=auth).json()
    # Both ECHEC: the one failing for longer first.
    assert [(p["client"], p["job"], p["status"]) for p in problems] == [
        ("durand", "serveurs", "ECHEC"), ("acme", "partages", "ECHEC")]
    runs = web.get("/api/v1/clients/acme/jobs/partages/runs?limit=1", headers=auth).json()
    assert [r["uid"] for r in runs] == [site.failed.uid]
    older = web.get("/api/v1/clients/acme/jobs/partages/runs",
                    params={"before": runs[0]["scheduled_for"]}, headers=auth).json()
    assert [(r["uid"], r["status"]) for r in older] == [(site.good.uid, "REUSSIE")]
    detail = web.get(f"/api/v1/runs/{site.good.uid}", headers=auth).json()
    assert detail["files"] > 0 and detail["client"] == "acme"
    assert [s["name"] for s in detail["steps"]][-2:] == ["copy", "retention"]
    client = web.get("/api/v1/clients/acme", headers=auth).json()
    partages = next(j for j in client["jobs"] if j["key"] == "partages")
    assert {p["baie"]: p["count"] for p in partages["restore_points"]} == {
        "site-a": 1, "site-b": 1}
    spec = web.get("/api/v1/openapi.json").json()
    assert {"/api/v1/clients", "/api/v1/clients/{client}", "/api/v1/problems",
            "/api/v1/clients/{client}/jobs/{job}/runs", "/api/v1/runs/{uid}"} <= set(spec["paths"])
    assert not any(path in spec["paths"] for path in ("/", "/login", "/metrics"))
    metrics = web.get("/metrics", headers=auth).text
    assert 'hvbackup_job_last_status{client="acme",job="partages",status="ECHEC"} 1' in metrics
    assert 'hvbackup_job_last_status{client="acme",job="partages",status="REUSSIE"} 0' in metrics
    assert 'hvbackup_client_stored_bytes{client="acme",baie="site-a"}' in metrics
    line = next(x for x in metrics.splitlines() if x.startswith(
        'hvbackup_job_last_success_timestamp_seconds{client="acme",job="partages"}'))
    with site.sessions() as session:
        finished = session.scalars(select(RunRow.finished_at).where(
            RunRow.uid == site.good.uid)).one()
    assert line.endswith(f" {finished.timestamp():.0f}")


def test_run_now_is_started_by_the_scheduler(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("marie")
    page = web.get("/clients/acme")
    token = csrf_of(page.text)
    assert web.post("/clients/acme/jobs/compta/run", data={"csrf": "nope"}).status_code == 403
    for _ in range(2):  # a double click queues one run
        answer = web.post("/clients/acme/jobs/compta/run", data={"csrf": token})
        assert answer.headers["location"] == "/clients/acme?flash=run_requested"
    assert "Lancement demandé" in web.get("/clients/acme?flash=run_requested").text
    with site.sessions() as session:
        [request] = session.scalars(select(RunRequestRow)).all()
        assert request.requested_by == "marie" and request.started_at is None
    assert [a.target for a in _audit(site, "job.run_now")] == ["acme/compta"]
    daemon = Daemon(site.s.ctx, max_workers=1)
    daemon._requested(site.clock.now())
    daemon.wait_idle()
    with site.sessions() as session:
        request = session.scalars(select(RunRequestRow)).one()
        run = session.scalars(select(RunRow).where(RunRow.uid == request.run_uid)).one()
    assert (run.trigger, run.status) == ("dashboard", "ECHEC")  # the host is still down
    assert "lancement demandé" not in web.get("/clients/acme").text


def test_password_change_ends_sessions_and_cookies_are_guarded(tmp_path: Path) -> None:
    site = Site(tmp_path, secure_cookies=True)
    web = TestClient(site.app, base_url="https://dashboard.example", follow_redirects=False)
    answer = site.post_login(web, {"username": "marie", "password": PASSWORDS["marie"]})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    assert PASSWORDS["marie"] not in answer.headers["set-cookie"]
    page = web.get("/")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    set_password(site.sessions, "marie", "a brand new password", "test", site.clock.now())
    assert web.get("/").status_code == 303  # back to the login page


def test_client_page_strip_chart_quota_and_copies(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("acme-it")
    page = web.get("/clients/acme").text
    jobs = page.split('class="job"')[1:]
    assert [j.split('"')[1] for j in jobs] == ["compta", "erp", "partages"]
    partages = jobs[2]
    assert partages.count('class="day ') == 30  # thirty days, one cell each
    assert partages.count('class="day s-REUSSIE"') == 1
    assert partages.count('class="day s-ECHEC"') == 1
    assert partages.count('class="day s-none"') == 28
    assert "site-a: <b>1</b>" in partages and "site-b: <b>1</b>" in partages
    assert "identiques" in partages  # the two copies matched after the last copy
    assert 'data-baie="site-a"' in page and 'data-baie="site-b"' in page  # the chart's lines
    assert 'id="quota-gauge"' in page and "pas de volume souscrit" in page
    assert "run-now" not in page  # a client account does not start runs


def test_run_page_links_to_the_runbook_of_its_error(tmp_path: Path) -> None:
    site = Site(tmp_path)
    page = site.login("marie").get(f"/runs/{site.failed.uid}").text
    assert 'href="/runbooks/HVB-HOST-UNREACHABLE?lang=fr"' in page
    client = site.login("acme-it")  # the client's run page says it in words, with no link,
    assert "/runbooks/" not in client.get(f"/runs/{site.failed.uid}").text
    assert client.get("/runbooks/HVB-HOST-UNREACHABLE").status_code == 403  # nor the pages
    web = site.login("marie")
    runbook = web.get("/runbooks/HVB-HOST-UNREACHABLE?lang=fr")
    assert runbook.status_code == 200
    assert "<h1>HVB-HOST-UNREACHABLE — Hôte injoignable</h1>" in runbook.text
    assert "<h2>Que vérifier</h2>" in runbook.text and "<code>hvbackup host check</code>" in \
        runbook.text
    english = web.get("/runbooks/HVB-HOST-UNREACHABLE?lang=en").text
    assert "Host unreachable" in english
    table = web.get("/runbooks/HVB-SCRIPT-FAILED").text
    assert "<td><code>GUEST_VSS_FAILED</code></td>" in table
    assert "Runbooks (en)" in web.get("/runbooks").text  # the language chosen last sticks
    for wrong in ("/runbooks/HVB-NOPE", "/runbooks/..%2F..%2Fpyproject", "/runbooks/README.md"):
        assert web.get(wrong).status_code == 404, wrong
    assert site.browser().get("/runbooks/HVB-KEY").status_code == 303  # login first


def test_a_refusal_says_why_to_the_person_still_logged_in(tmp_path: Path) -> None:
    site = Site(tmp_path)
    portal = site.login("acme-it")
    missing = portal.get(f"/runs/{site.durand_run}")
    assert missing.status_code == 404
    assert 'id="message">Introuvable.</p>' in missing.text
    assert 'id="whoami">acme-it (client: acme)' in missing.text  # the menu is still there
    run = f"/runs/{site.failed.uid}"
    refused = portal.post(f"{run}/acknowledge",
                          data={"comment": "x", "csrf": csrf_of(portal.get(run).text)})
    assert refused.status_code == 403
    assert "Cette page ne vous est pas accessible." in html.unescape(refused.text)
    hotline = site.login("marie")
    forged = hotline.post(f"{run}/acknowledge", data={"comment": "x", "csrf": "forged"})
    assert forged.status_code == 403
    assert "Le formulaire a expiré" in html.unescape(forged.text)
    # The API answers in JSON, and says no more than that it is not there.
    answer = site.browser().get(f"/api/v1/runs/{site.durand_run}",
                                headers=site.token("acme-it"))
    assert answer.status_code == 404
    assert answer.json() == {"detail": f"no run {site.durand_run!r}"}
    assert portal.get("/api/v1/clients/durand/jobs/serveurs/runs").json() == {
        "detail": "no client 'durand'"}
    assert hotline.get("/api/v1/clients/acme/jobs/nope/runs").json() == {
        "detail": "no job acme/nope"}
    assert 'id="message">Not found.</p>' in hotline.get("/runbooks/HVB-NOPE?lang=en").text


def test_a_quota_problem_is_acknowledged_from_the_home_page(tmp_path: Path) -> None:
    from orchestrator.history.models import AlertRow, ClientRow

    site = Site(tmp_path)
    with site.sessions() as session, session.begin():
        acme = session.scalars(select(ClientRow).where(ClientRow.key == "acme")).one()
        session.add(AlertRow(kind="quota_warning", severity="warning", client_id=acme.id,
                             created_at=site.clock.now(), message="volume souscrit dépassé",
                             details={"baie": "site-a"}))
    web = site.login("marie")
    home = web.get("/?status=quota").text
    [row] = home.split('class="problem"')[1:]
    assert 'data-status="quota"' in row and 'class="ack-alert"' in row
    action = row.split('action="')[1].split('"')[0]
    assert web.post(action, data={"comment": "x", "csrf": "forged"}).status_code == 403
    done = web.post(action, data={"comment": "commercial prévenu", "csrf": csrf_of(home)})
    assert done.status_code == 303
    assert "marie, le 24/11/2026 22:00\u00a0: commercial prévenu" in web.get("/?status=quota").text
    [audit] = _audit(site, "alert.acknowledge")
    assert audit.target == "acme/quota_warning"
    # A client account sees its quota problem but cannot acknowledge it, nor another's.
    portal = site.login("acme-it")
    assert 'class="ack-alert"' not in portal.get("/").text
    assert portal.post(action, data={"comment": "x", "csrf": csrf_of(portal.get(
        f"/runs/{site.failed.uid}").text)}).status_code == 403
    assert site.login("durand-it").post(action, data={"comment": "x"}).status_code == 404


def test_quota_gauge_says_where_the_client_stands(tmp_path: Path) -> None:
    from orchestrator.history.models import BaieUsageRow, ClientRow

    site = Site(tmp_path)
    with site.sessions() as session, session.begin():
        acme = session.scalars(select(ClientRow).where(ClientRow.key == "acme")).one()
        acme.quota_bytes = 1_000_000_000
        for days, used in ((40, 900_000_000), (35, 1_150_000_000), (1, 1_200_000_000)):
            session.add(BaieUsageRow(client_id=acme.id, baie="site-c", bytes_stored=used,
                                     measured_at=site.clock.now() - timedelta(days=days)))
    page = site.login("acme-it").get("/clients/acme").text
    assert 'id="quota-status">sauvegardes arrêtées' in page
    assert "1,2 Go / 1,0 Go (120 %)" in page


def test_the_hotlines_notes_stay_internal(tmp_path: Path) -> None:
    site = Site(tmp_path)
    hotline = site.login("marie")
    page = hotline.get(f"/runs/{site.failed.uid}")
    hotline.post(f"/runs/{site.failed.uid}/acknowledge",
                 data={"comment": "client pénible, rappeler demain", "csrf": csrf_of(page.text)})
    assert "client pénible" in hotline.get(f"/runs/{site.failed.uid}").text
    client = site.login("acme-it")
    for path in (f"/runs/{site.failed.uid}", "/", "/clients/acme"):
        shown = html.unescape(client.get(path).text)
        assert "client pénible" not in shown and "marie" not in shown, path
    api = site.browser()
    problems_seen = api.get("/api/v1/problems", headers=site.token("acme-it")).json()
    assert problems_seen
    for problem in problems_seen:
        assert problem["acknowledged_by"] is None and problem["acknowledged_comment"] is None
        assert problem["acknowledged_at"] is None  # not even that someone acknowledged
        assert "HVB-" not in problem["message"] and problem["message"], problem
    run = api.get(f"/api/v1/runs/{site.failed.uid}", headers=site.token("acme-it")).json()
    assert run["error_code"] is None and run["error_message"] is None and run["log"] == []
    assert all(step["error_message"] is None for step in run["steps"])
    staff = api.get(f"/api/v1/runs/{site.failed.uid}", headers=site.token("marie")).json()
    assert staff["error_code"] and staff["log"]  # the hotline keeps everything
    # The runbooks name commands and settings: the hotline's, not the client's.
    assert client.get("/runbooks/HVB-RUN-MISSED").status_code == 403
    assert hotline.get("/runbooks/HVB-RUN-MISSED").status_code == 200


def test_the_months_usage_is_for_admins(tmp_path: Path) -> None:
    from orchestrator.dashboard.accounts import add_user

    site = Site(tmp_path)
    add_user(site.sessions, "paul", "admin password 1", "admin", None, "test", site.clock.now())
    admin = site.browser()
    assert site.post_login(admin, {"username": "paul", "password": "admin password 1"}
                           ).status_code == 303
    answer = admin.get("/usage.csv?month=2026-11")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="hvbackup-usage-2026-11.csv"' in answer.headers["content-disposition"]
    lines = answer.text.splitlines()
    assert lines[0].startswith("month,client,name,subscribed_gb_start")
    acme = [line for line in lines if line.startswith("2026-11,acme,ACME,")]
    assert acme and all(line.endswith(",1,0,1,0") for line in acme)  # 1 REUSSIE, 1 ECHEC
    assert admin.get("/usage.csv?month=novembre").status_code == 400
    assert site.login("marie").get("/usage.csv?month=2026-11").status_code == 403
    api = site.browser().get("/api/v1/usage?month=2026-11", headers=site.token("paul")).json()
    assert [c["client"] for c in api["clients"]] == ["acme", "durand"]
    assert site.browser().get("/api/v1/usage?month=2026-11",
                              headers=site.token("acme-it")).status_code == 403


def test_a_run_that_never_started_says_when_it_was_due_not_an_end(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from orchestrator.history.models import JobRow, RunState

    site = Site(tmp_path)
    due = site.clock.now() - timedelta(hours=9)
    with site.sessions() as session, session.begin():
        job = session.scalars(select(JobRow).where(JobRow.key == "partages")).one()
        session.add(RunRow(uid="202611240000-n0n0n0", job_id=job.id, trigger="schedule",
                           scheduled_for=due, state=RunState.FINISHED.value,
                           status="NON EXECUTEE", finished_at=site.clock.now(),
                           error_code="HVB-RUN-MISSED",
                           error_message="NON EXECUTEE: the run did not start"))
    page = html.unescape(site.login("marie").get("/runs/202611240000-n0n0n0").text)
    local = due.astimezone(ZoneInfo("Europe/Paris"))
    assert f"prévue le {local:%d/%m/%Y %H:%M}, elle n'a pas démarré" in page
    assert "Fin " not in page.split("<table")[0]
    told = page.split('id="run-told"><b>')[1].split("</b>")[0]  # French first, for the hotline
    assert told and "NON EXECUTEE:" not in told and "the run" not in told, told
    assert "HVB-RUN-MISSED — NON EXECUTEE: the run did not start" in page  # then the detail
