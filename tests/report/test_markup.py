"""Markup in anything that reaches a mail (a client's name, a VM name, a host's error text)
is shown as text, never as HTML: every HTML part of every kind of message is checked."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import AlertRow, RunRow
from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import send_alerts, send_summary
from tests.report.test_mail import smtp_server, with_smtp  # noqa: F401
from tests.world import Setup

EVIL = '<img src=x onerror="alert(1)">'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def html_tags(msg: EmailMessage) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Tags()
    parser.feed(msg.get_body(("html",)).get_content())
    return parser.tags


def test_markup_in_names_and_errors_is_text_in_every_mail(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.config.write_text(s.config.read_text().replace("    name: ACME", f"    name: 'ACME {EVIL}'"))
    s.reload()
    s.run("erp")
    with s.sessions() as session, session.begin():  # what a host may say in its errors
        for row in session.scalars(select(RunRow)):
            row.error_message = f"{row.error_message} {EVIL} <script>alert(2)</script>"
        for alert in session.scalars(select(AlertRow)):
            alert.message = f"{alert.message} {EVIL}"
    night = date(2026, 11, 23)
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True)
    send_summary(s.loaded, s.sessions, night, s.clock.now(), send_it=True)
    send_digest(s.loaded, s.sessions, "acme", night, s.clock.now(), send_it=True)
    assert len(inbox.messages) == 3
    for msg in inbox.messages:
        tags = html_tags(msg)
        assert not [t for t, _ in tags if t in ("img", "script")], msg["Subject"]
        assert not [a for _, attrs in tags for a, _ in attrs if a.startswith("on")]
        html = msg.get_body(("html",)).get_content()
        assert "&lt;img" in html, msg["Subject"]  # shown, as text
