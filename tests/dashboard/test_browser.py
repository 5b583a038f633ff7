"""The dashboard in Debian's Chromium, driven by Playwright as people use it: the hotline logs
in, sees the failed job, opens the run and acknowledges it; a client logs in and fails to open
another client's pages and API routes. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image
from sqlalchemy import select

from orchestrator.history.models import AuditRow
from tests.conftest import REPO
from tests.dashboard.site import PASSWORDS, Site
from tests.servers import free_port

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Site, str]]:
    site = Site(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "the dashboard did not start"
    yield site, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make services` (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORDS[username])
    page.click("button[type=submit]")
    page.wait_for_selector("#whoami")


def _contrast(one: str, two: str) -> float:
    """WCAG contrast ratio of two computed CSS colours ("rgb(r, g, b)")."""
    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                  for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    light, dark = sorted((luminance(one), luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    colours = Image.open(path).convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 20, f"{name} is (nearly) blank"
    return path


@pytest.mark.slow
def test_hotline_sees_the_failure_opens_the_run_and_acknowledges_it(
        served: tuple[Site, str], browser: Any) -> None:
    site, base = served
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    _login(page, base, "marie")
    row = page.locator('tr.problem[data-client="acme"][data-job="partages"]')
    assert row.get_attribute("data-status") == "ECHEC"
    assert row.locator("td.ack form.ack-run").count() == 1  # not acknowledged yet
    assert row.locator("td.actions form.relaunch").count() == 1
    red = (0xCF, 0x22, 0x2E)  # the ECHEC badge
    shot = _shot(page, "dashboard-home.png")
    assert any(c == red for _n, c in Image.open(shot).convert("RGB").getcolors(1_000_000) or [])
    row.locator("a.run-link").click()
    page.wait_for_selector("#run-status")
    assert page.inner_text("#run-status") == "ECHEC"
    assert "HVB-HOST-UNREACHABLE" in page.inner_text("#run-error")
    assert "started (schedule)" in page.inner_text("#log")
    page.fill("#ack-form input[name=comment]", "hôte en maintenance, client prévenu")
    page.click("#ack-form button")
    page.wait_for_selector("#acknowledgements .ack")
    assert "marie" in page.inner_text("#acknowledgements")
    _shot(page, "dashboard-run.png")
    page.click("header a >> nth=1")  # À traiter
    ack = page.locator('tr.problem[data-client="acme"] td.ack').inner_text()
    assert ack.startswith("marie, le ")
    assert ack.endswith("\u00a0: hôte en maintenance, client prévenu")
    with site.sessions() as session:  # audited
        assert session.scalars(select(AuditRow.actor).where(
            AuditRow.action == "run.acknowledge")).all() == ["web:marie"]
    page.goto(f"{base}/clients/acme")
    assert page.locator("tr.job").count() == 3
    assert page.locator("svg.chart polyline.series").count() == 2
    _shot(page, "dashboard-client.png")


@pytest.mark.slow
def test_client_cannot_cross_into_another_client(served: tuple[Site, str],
                                                 browser: Any) -> None:
    site, base = served
    page = browser.new_page()
    _login(page, base, "acme-it")
    assert 'data-client="durand"' not in page.content()
    for path in ("/clients/durand", f"/runs/{site.durand_run}", "/clients/durand/jobs/serveurs"):
        answer = page.goto(f"{base}{path}")
        assert answer.status == 404, path
        assert "DURAND" not in page.content()
    _shot(page, "dashboard-client-refused.png")
    for path in ("/api/v1/clients/durand", f"/api/v1/runs/{site.durand_run}"):
        answer = page.goto(f"{base}{path}")
        assert answer.status == 404, path
    answer = page.goto(f"{base}/api/v1/clients")
    assert [c["key"] for c in answer.json()] == ["acme"]
    page.goto(f"{base}/clients/acme")
    assert page.inner_text("#client-name").startswith("ACME")


@pytest.mark.slow
def test_the_header_turns_red_when_the_scheduler_is_late(served: tuple[Site, str],
                                                         browser: Any) -> None:
    from datetime import timedelta

    site, base = served
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    _login(page, base, "marie")
    banner = page.locator("#scheduler")
    assert banner.inner_text() == ("planificateur\u00a0: scheduler-for-tests (pid 1), "
                                   "dernier passage il y a 0 h 00 min")
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
    site.clock.advance(timedelta(minutes=20))  # no tick since: the scheduler is stopped
    page.reload()
    assert banner.inner_text() == ("planificateur\u00a0: scheduler-for-tests (pid 1), "
                                   "dernier passage il y a 0 h 20 min")
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(207, 34, 46)"
    text, back = banner.evaluate(
        "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
    ratio = _contrast(text, back)
    assert ratio >= 4.5, f"the late scheduler badge is {text} on {back}: {ratio:.2f}:1"
    header, box = page.locator("header").bounding_box(), banner.bounding_box()
    assert header and box and box["y"] >= header["y"] and \
        box["y"] + box["height"] <= header["y"] + header["height"]  # on one line, inside
    _shot(page, "dashboard-scheduler-late.png")


@pytest.mark.slow
def test_a_client_on_a_phone_lands_on_its_page_and_it_fits(served: tuple[Site, str],
                                                           browser: Any) -> None:
    _site, base = served
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, device_scale_factor=2)
    page = phone.new_page()
    _login(page, base, "acme-it")
    assert page.url == f"{base}/clients/acme"  # its own page, not the hotline's "À traiter"
    _shot(page, "dashboard-client-phone.png")
    assert page.evaluate("window.innerWidth") == 390  # laid out for the phone, not shrunk
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the client page is {width} px wide on a 390 px phone"
    assert page.locator("svg.chart polyline.series").count() == 2
    dates = page.locator('tr.job[data-job="partages"] .strip-dates').inner_text()
    assert dates == "26/10 → 24/11", dates  # the strip says which nights it shows
    phone.close()


@pytest.mark.slow
def test_the_hotline_home_fits_a_phone(served: tuple[Site, str], browser: Any) -> None:
    _site, base = served
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, device_scale_factor=2)
    page = phone.new_page()
    _login(page, base, "marie")
    assert page.url == f"{base}/"
    assert page.locator("tr.problem").count() >= 2
    _shot(page, "dashboard-home-phone.png")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the home page is {width} px wide on a 390 px phone"
    table = page.evaluate("(() => { const t = document.getElementById('problems');"
                          " return [t.scrollWidth, t.clientWidth]; })()")
    assert table[0] <= table[1], f"the problems table scrolls sideways: {table}"
    row = page.locator('tr.problem[data-client="acme"][data-job="partages"]')
    box = row.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert row.locator("form.ack-run button").is_visible()
    phone.close()
