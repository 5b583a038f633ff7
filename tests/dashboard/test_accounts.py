"""Dashboard accounts: argon2 hashes, roles and client scoping, audited; no password in clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.dashboard.accounts import authenticate
from orchestrator.history.models import AuditRow, UserRow
from tests.world import Setup

SECRET = "correct horse battery staple"


def test_accounts_lifecycle(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    monkeypatch.setenv("HVBACKUP_USER_PASSWORD", SECRET)
    assert cli("users", "add", "-c", str(s.config), "marie", "--role", "hotline").code == 0
    added = cli("users", "add", "-c", str(s.config), "it-acme", "--role", "client",
                "--client", "acme")
    assert added.code == 0 and "sees only acme" in added.out
    listed = cli("users", "list", "-c", str(s.config)).out
    assert "it-acme  client   acme" in listed and "marie    hotline  -" in listed
    with s.sessions() as session:
        hashes = [u.password_hash for u in session.scalars(select(UserRow))]
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert SECRET.encode() not in (tmp_path / "state" / "hvbackup.db").read_bytes()
    now = s.clock.now()
    assert authenticate(s.sessions, "marie", SECRET, now) is not None
    assert authenticate(s.sessions, "marie", SECRET + "!", now) is None
    assert authenticate(s.sessions, "nobody", SECRET, now) is None

    monkeypatch.setenv("HVBACKUP_USER_PASSWORD", SECRET + " v2")
    assert cli("users", "passwd", "-c", str(s.config), "marie").code == 0
    assert authenticate(s.sessions, "marie", SECRET, now) is None
    assert authenticate(s.sessions, "marie", SECRET + " v2", now) is not None
    assert cli("users", "remove", "-c", str(s.config), "marie").code == 0
    assert authenticate(s.sessions, "marie", SECRET + " v2", now) is None
    with s.sessions() as session:
        actions = [a.action for a in session.scalars(select(AuditRow).where(
            AuditRow.action.like("user.%")).order_by(AuditRow.id))]
    assert actions == ["user.add", "user.add", "user.passwd", "user.remove"]


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "client"], "a client account needs --client"),
    (["--role", "hotline", "--client", "acme"], "only a client account has one"),
    (["--role", "client", "--client", "nope"], "no client 'nope' in the history"),
])
def test_bad_accounts_are_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                  args: list[str], message: str) -> None:
    s = Setup(tmp_path)
    monkeypatch.setenv("HVBACKUP_USER_PASSWORD", SECRET)
    result = cli("users", "add", "-c", str(s.config), "x", *args)
    assert result.code == 2 and message in result.err


def test_short_passwords_are_refused(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(tmp_path)
    monkeypatch.setenv("HVBACKUP_USER_PASSWORD", "short")
    result = cli("users", "add", "-c", str(s.config), "x", "--role", "admin")
    assert result.code == 2 and "at least 12 characters" in result.err


def test_a_client_account_lands_on_its_own_page(tmp_path: Path) -> None:
    from tests.dashboard.site import PASSWORDS, Site, csrf_of

    site = Site(tmp_path)
    web = site.browser()
    form = web.get("/login").text
    answer = web.post("/login", data={"username": "acme-it", "password": PASSWORDS["acme-it"],
                                      "next": "/", "csrf": csrf_of(form)})
    assert answer.status_code == 303
    landed = web.get(answer.headers["location"], follow_redirects=True)
    assert landed.url.path == "/clients/acme"
    assert "À traiter" not in landed.text.split("</nav>")[-1]
    hotline = site.login("marie")
    assert hotline.get("/").url.path == "/"  # the hotline's home is still "À traiter"
