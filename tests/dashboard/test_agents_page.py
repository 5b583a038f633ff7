"""The agents page: the hotline reads each site's agents (version, last contact, red when
silent past the site's heartbeat, what they run, what waits in their spool) and the sites with
no agent; a client account never sees it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.clock import FrozenClock
from orchestrator.dashboard.accounts import add_user
from tests.config.two_sites import write_two_sites
from tests.dashboard.agents import API, Central
from tests.dashboard.site import csrf_of

NBSP = "\u00a0"


def _login(central: Central, user: str, password: str) -> TestClient:
    web = TestClient(central.app, follow_redirects=False)
    form = web.get("/login")
    assert web.post("/login", data={"username": user, "password": password, "next": "/",
                                    "csrf": csrf_of(form.text)}).status_code == 303
    return web


def _rows(html: str) -> dict[str, list[str]]:
    """agent (or "site:<key>" for a site with none) -> its cells, text only."""
    out = {}
    for site, agent, body in re.findall(
            r'<tr class="agent" data-site="([^"]*)" data-agent="([^"]*)"[^>]*>(.*?)</tr>',
            html, re.S):
        cells = [re.sub(r"[ \t\n]+", " ", unescape(re.sub(r"<[^>]+>", "", c))).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
        out[agent or f"site:{site}"] = cells
    return out


def test_the_hotline_reads_every_agent_and_a_client_is_refused(tmp_path: Path,
                                                               clock: FrozenClock) -> None:
    # One agent a site: ACME's annex gets a site (and an agent) of its own here.
    path = write_two_sites(tmp_path)
    text = path.read_text(encoding="utf-8")
    annex = text.replace("sites:\n", "sites:\n  acme-annexe:\n    name: ACME, annexe\n"
                         "    heartbeat_minutes: 30\n", 1).replace(
        "        address: hv02.annexe-acme.local\n",
        "        address: hv02.annexe-acme.local\n        site: acme-annexe\n", 1)
    assert "  acme-annexe:\n" in annex and "site: acme-annexe" in annex
    path.write_text(annex, encoding="utf-8")
    central = Central(tmp_path, clock, config=path)  # 23/11/2026 10:00 in Paris
    add_user(central.sessions, "marie", "hotline password 1", "hotline", None, "test",
             clock.now())
    add_user(central.sessions, "acme-it", "acme portal password", "client", "acme", "test",
             clock.now())
    busy = central.enroll("acme-siege", "srv-acme")
    central.enroll("acme-annexe", "srv-acme-old")  # enrolled, never called since
    clock.advance(timedelta(minutes=30))
    assert central.web.post(f"{API}/heartbeat", headers=busy, json={
        "version": "1.4.2", "queued_runs": 2, "running": [
            {"client": "acme", "job": "erp-acme", "step": "backup",
             "done_bytes": 1_500_000_000}]}).status_code == 200
    clock.advance(timedelta(minutes=1))  # 10:31: the old one is silent past 30 min

    hotline = _login(central, "marie", "hotline password 1")
    home = hotline.get("/").text
    assert '<a href="/agents" id="agents-link">Agents</a>' in home
    page = hotline.get("/agents")
    assert page.status_code == 200
    rows = _rows(page.text)
    assert rows["srv-acme"] == ["ACME, siège de Lyon acme-siege", "srv-acme", "1.4.2",
                                "23/11/2026 10:30", "acme/erp-acme · backup · 1,5 Go",
                                "2"]
    assert 'data-agent="srv-acme" data-silent="no"' in page.text
    assert rows["srv-acme-old"] == [
        "ACME, annexe acme-annexe", "srv-acme-old", "1.0.0",
        f"23/11/2026 10:00 · silencieux depuis 0 h 31 min (attendu toutes les 30{NBSP}min)",
        "rien", "0"]
    assert re.search(r'<td class="seen late">23/11/2026 10:00', page.text)  # in red
    assert rows["site:bobco-usine"] == [
        "BobCo, usine bobco-usine",
        f"aucun agent enrôlé{NBSP}: rien de ce site n'arrive (hvbackup agent token --site "
        "bobco-usine)"]
    assert list(rows) == ["srv-acme-old", "srv-acme", "site:bobco-usine"]

    portal = _login(central, "acme-it", "acme portal password")
    refused = portal.get("/agents")
    assert refused.status_code == 403
    assert "Cette page ne vous est pas accessible." in refused.text
    assert "srv-acme" not in refused.text
    own = portal.get("/clients/acme").text
    assert 'href="/agents"' not in own
    assert TestClient(central.app, follow_redirects=False).get("/agents").status_code == 303
