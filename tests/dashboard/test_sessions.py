"""Sessions held by the server: logging out or changing a password ends them, whoever holds a
copy of the cookie; the login form needs its CSRF token; throttling by account and source
never locks the owner of an account out from the browser they already use."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.dashboard.accounts import set_password
from tests.dashboard.site import PASSWORDS, Site, csrf_of


def _login(web: TestClient, username: str, password: str) -> int:
    form = web.get("/login")
    return web.post("/login", data={"username": username, "password": password,
                                    "csrf": csrf_of(form.text)}).status_code


def _from(site: Site, address: str) -> TestClient:
    return TestClient(site.app, follow_redirects=False, client=(address, 40000))


def test_a_cookie_copied_before_logout_no_longer_works(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("marie")
    stolen = dict(web.cookies)
    assert web.get("/").status_code == 200
    assert web.post("/logout", data={"csrf": csrf_of(web.get("/").text)}).status_code == 303
    thief = site.browser()
    thief.cookies.update(stolen)
    assert thief.get("/").status_code == 303
    assert thief.get("/api/v1/problems").status_code == 401


def test_a_password_change_ends_every_session_of_the_account(tmp_path: Path) -> None:
    site = Site(tmp_path)
    laptop, phone = site.login("marie"), site.login("marie")
    other = site.login("acme-it")
    set_password(site.sessions, "marie", "a brand new password", "test", site.clock.now())
    assert laptop.get("/").status_code == 303 and phone.get("/").status_code == 303
    assert other.get("/clients/acme").status_code == 200  # someone else's session lives on


def test_sessions_end_after_twelve_hours(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.login("marie")
    site.clock.advance(timedelta(hours=11, minutes=59))
    assert web.get("/").status_code == 200
    site.clock.advance(timedelta(minutes=2))
    assert web.get("/").status_code == 303


def test_the_login_form_needs_its_csrf_token(tmp_path: Path) -> None:
    site = Site(tmp_path)
    web = site.browser()
    forged = web.post("/login", data={"username": "marie", "password": PASSWORDS["marie"]})
    assert forged.status_code == 400
    assert "rechargez la page" in html.unescape(forged.text)
    assert web.get("/").status_code == 303  # not logged in
    assert _login(web, "marie", PASSWORDS["marie"]) == 303


def test_failures_from_elsewhere_never_lock_the_owner_out_of_their_browser(
        tmp_path: Path) -> None:
    site = Site(tmp_path)
    owner = _from(site, "192.0.2.10")
    assert _login(owner, "marie", PASSWORDS["marie"]) == 303  # this browser is now known
    owner.post("/logout", data={"csrf": csrf_of(owner.get("/").text)})
    for n in range(30):  # guesses from many addresses
        assert _login(_from(site, f"198.51.100.{n}"), "marie", "guess") in (401, 429)
    assert _login(owner, "marie", PASSWORDS["marie"]) == 303


def test_one_source_guessing_is_stopped_without_locking_others_behind_it(
        tmp_path: Path) -> None:
    site = Site(tmp_path)
    guesser = _from(site, "203.0.113.5")  # a proxy address the whole MSP shares
    for _ in range(5):
        assert _login(guesser, "marie", "guess") == 401
    assert _login(guesser, "marie", PASSWORDS["marie"]) == 429
    colleague = _from(site, "203.0.113.5")
    assert _login(colleague, "acme-it", PASSWORDS["acme-it"]) == 303
    site.clock.advance(timedelta(minutes=15))
    assert _login(guesser, "marie", PASSWORDS["marie"]) == 303
