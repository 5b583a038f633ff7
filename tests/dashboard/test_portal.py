"""A client's portal in the client's words: missed nights shown as not run in the 30-day
strip, no technician content (host names, codes, English log lines, runbook links), the MSP's
name and phone to call, and run times in the MSP's time zone; a hotline account keeps the
full detail."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from orchestrator.jobs.daemon import Daemon
from tests.dashboard.site import Site
from tests.dashboard.test_scheduler_down import (
    dashboard,
    logged_in,
    one_good_night_then_the_scheduler_stops,
    utc,
)


def _text(html: str) -> str:
    body = html.split("<body>", 1)[1]
    return re.sub(r"[ \n\t]+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def _strip(page: str, job: str) -> list[tuple[str, str]]:
    """(class, title) of each day of the job's 30-day strip."""
    row = re.search(rf'<tr class="job" data-job="{job}">(.*?)</tr>', page, re.S)
    assert row, f"no row for {job}"
    return re.findall(r'class="day ([^"]+)"[^>]*title="([^"]*)"', row.group(1))


def test_missed_nights_show_as_not_run_in_the_strip(tmp_path: Path) -> None:
    s = one_good_night_then_the_scheduler_stops(tmp_path)  # stopped from the 24th, 06:00
    _hotline, portal = dashboard(s)
    days = _strip(portal.get("/clients/acme").text, "partages")
    assert len(days) == 30
    missed = [title for cls, title in days if "s-NON-EXECUTEE" in cls]
    assert missed == ["24/11 non exécutée", "25/11 non exécutée", "26/11 non exécutée"]
    assert [cls for cls, title in days if title.startswith("23/11")] == ["s-REUSSIE"]
    assert [cls for cls, title in days if title.startswith("27/11")] == ["s-none"]  # 22:00

    daemon = Daemon(s.ctx)  # restarted on the 27th: it runs that night
    for when in (utc(27, 20), utc(27, 21), utc(27, 22), utc(28, 6)):
        s.clock.set(when)
        daemon.tick()
        daemon.wait_idle()
    _hotline, portal = logged_in(s)
    days = dict((title[:5], cls) for cls, title in _strip(
        portal.get("/clients/acme").text, "partages"))
    assert days["27/11"] == "s-REUSSIE"
    # Between two runs, the nights the stopped scheduler recorded nothing stay "not run".
    assert "s-NON-EXECUTEE" in days["24/11"] and "s-NON-EXECUTEE" in days["25/11"]
    assert "s-NON-EXECUTEE" in days["26/11"]
    assert days["22/11"] == "s-none"  # before the job existed: nothing was due


def test_a_client_reads_its_words_and_the_hotline_the_detail(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.settings.msp = site.s.loaded.config.msp.model_copy(
        update={"name": "Infogérance Démo", "phone": "01 23 45 67 89"})
    failed, good = site.failed.uid, site.good.uid
    portal = site.login("acme-it")

    own = portal.get("/clients/acme").text
    row = re.search(r'<tr class="job" data-job="partages">(.*?)</tr>', own, re.S)
    assert row
    assert '<span class="muted job-sub">chaque jour à 21:00</span>' in row.group(1)
    assert "hv01" not in _text(own) and "files ·" not in _text(own)
    assert ("Une question sur vos sauvegardes\u202f? Infogérance Démo vous répond au "
            "01 23 45 67 89.") in _text(own)

    page = portal.get(f"/runs/{failed}").text
    text = _text(page)
    assert "La sauvegarde n'a pas pu être faite cette nuit\u202f; notre hotline est " \
           "prévenue et s'en occupe." in text
    for technical in ("HVB-", "hv01", "WinRM", "simulated", "/runbooks/", 'id="log"',
                      "started (schedule)", failed):
        assert technical not in (text if technical == failed else page), technical
    assert "Sauvegarde du 24/11/2026 22:00" in text  # Paris time, not the UTC-based id
    assert "days rolling" not in portal.get(f"/runs/{good}").text
    assert "Infogérance Démo vous répond au 01 23 45 67 89" in _text(page)
    job = portal.get("/clients/acme/jobs/partages").text
    assert "WinRM" not in job and "hotline est prévenue" in unescape(job)
    assert "<h1><a href=\"/clients/acme\">ACME</a> / partages</h1>" in job

    hotline = site.login("marie")
    page = hotline.get(f"/runs/{failed}").text
    text = _text(page)
    assert "HVB-HOST-UNREACHABLE" in text and "WinRM" in text and 'id="log"' in page
    assert f"réf. {failed}" in text and "Sauvegarde du 24/11/2026 22:00" in text
    assert 'href="/runbooks/HVB-HOST-UNREACHABLE?lang=fr"' in page
    assert "days rolling" in hotline.get(f"/runs/{good}").text
    assert 'id="support"' not in page  # the hotline is the support
    own = hotline.get("/clients/acme").text
    assert "files · hv01 · daily 21:00" in own


def test_without_a_phone_the_portal_gives_the_hotlines_address(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.settings.msp = site.s.loaded.config.msp.model_copy(
        update={"name": "Infogérance Démo", "phone": None})
    own = site.login("acme-it").get("/clients/acme").text
    hotline = ", ".join(site.s.loaded.config.msp.hotline)
    assert ("Une question sur vos sauvegardes\u202f? Infogérance Démo vous répond à "
            f"{hotline}.") in _text(own)
