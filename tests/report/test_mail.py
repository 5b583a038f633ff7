"""Digests through a real SMTP server (aiosmtpd) started by the test: subject, headers, text,
HTML and JSON parts, in French and English; the outbox keeps a copy whatever happens."""

from __future__ import annotations

import email
import json
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from orchestrator.history.models import EmailRow
from tests.servers import free_port
from tests.world import Setup


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raw = envelope.content  # type: ignore[attr-defined]
        self.messages.append(email.message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_server():  # type: ignore[no-untyped-def]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def with_smtp(s: Setup, port: int, language: str = "fr") -> None:
    text = s.config.read_text().replace("baies:", f"""smtp:
  host: 127.0.0.1
  port: {port}
  security: none
  from: "Sauvegardes <sauvegardes@msp.example>"
baies:""", 1).replace("    contacts: [it@acme.example]",
                     f"    contacts: [it@acme.example]\n    language: {language}")
    s.config.write_text(text)


@pytest.mark.parametrize(("language", "subject"), [
    ("fr", "[REUSSIE] ACME — sauvegardes du 23/11/2026 — 3/3 réussies"),
    ("en", "[REUSSIE] ACME — backups of 23/11/2026 — 3/3 succeeded"),
])
def test_digest_is_received_with_all_its_parts(cli, tmp_path: Path, smtp_server,  # type: ignore[no-untyped-def]
                                               language: str, subject: str) -> None:
    port, inbox = smtp_server
    s = Setup(tmp_path)
    with_smtp(s, port, language)
    for job in ("partages", "erp", "compta"):
        s.run(job)
    assert cli("verify", "-c", str(s.config), "acme", "--read-data-subset", "100%").code == 0
    result = cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--send")
    assert result.code == 0, result.err
    [msg] = inbox.messages
    assert msg["Subject"] == subject
    assert (msg["X-HVBackup-Status"], msg["X-HVBackup-Client"], msg["X-HVBackup-Date"]) == (
        "REUSSIE", "acme", "2026-11-23")
    assert msg["To"] == "it@acme.example"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert ("Points de restauration\u00a0: 1" if language == "fr" else "Restore points: 1") in text
    if language == "fr":
        assert "Copies\u00a0: site-a et site-b, mêmes points de restauration au 23/11 22:00" in text
        assert "Dernière vérification\u00a0: 23/11 10:00 (site-a), sans problème" in text
    else:
        assert "Last verification: 23/11 10:00 (site-a), no problem" in text
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert html.count('class="bar"') == 3  # one bar per job in the 30-day chart
    [data] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/json"]
    payload = json.loads(data.get_content())
    assert payload["client"] == "acme" and len(payload["jobs"]) == 3
    with s.sessions() as session:
        row = session.scalars(select(EmailRow)).one()
        assert row.status == "sent" and Path(row.outbox_path or "").exists()


def test_failed_job_digest_says_what_to_do(cli, tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.run("erp")
    assert cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--send").code == 0
    [msg] = inbox.messages
    # compta runs later that night; partages was not due yet when the job was added
    assert msg["Subject"] == ("[ECHEC] ACME — sauvegardes du 23/11/2026 — 1 en échec, "
                              "1 prévue plus tard")
    text = msg.get_body(("plain",)).get_content()
    # The client reads what happened in its words; the technical text is the hotline's.
    assert ("Erreur\u00a0: La sauvegarde n'a pas pu être faite cette nuit\u202f; notre hotline est "
            "prévenue et s'en occupe.") in text
    assert "simulated" not in text and "WinRM" not in text and "HVB-" not in text
    assert "Que faire\u00a0: notre hotline est prévenue" in text


def test_smtp_down_keeps_the_message_in_the_outbox(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    with_smtp(s, free_port())
    s.run("partages")
    result = cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--send")
    assert result.code == 7
    assert "could not be sent after 3 attempts" in result.err
    assert list((tmp_path / "state" / "outbox").glob("2026-11-23-acme-digest.eml"))
    with s.sessions() as session:
        assert session.scalars(select(EmailRow.status)).one() == "failed"


def test_preview_writes_the_html(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    s.run("partages")
    out = tmp_path / "preview.html"
    result = cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--preview",
                 str(out))
    assert result.code == 0, result.err
    assert "<table" in out.read_text() and "partages" in out.read_text()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.report.mail

    monkeypatch.setattr(orchestrator.report.mail, "RETRY_DELAY_S", 0.01)
