"""The hotline's messages through a real SMTP server: grouped alerts, the morning summary
worst first, and a client report that did not go out."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from pathlib import Path

from orchestrator.report.hotline import missing_digests, send_alerts, send_summary
from tests.certs import self_signed
from tests.report.test_mail import quick_retries, smtp_server, with_smtp  # noqa: F401
from tests.world import Setup


def test_alerts_are_grouped_and_sent_once(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.reload()
    s.run("erp")
    s.run("compta")
    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True) == 2
    [msg] = inbox.messages
    assert msg["Subject"] == "[hvbackup] 1 problème : ACME"  # one host down: one cause
    assert msg["To"] == "hotline@msp.example"
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    # French first, from the findings; the code and the host's English on a line of its own.
    assert ("ACME (acme), tâches erp, compta — sauvegarde en échec\u00a0: la sauvegarde n'a pas "
            "pu se faire (hôte injoignable)\n"
            "  même cause, serveur hv01\u00a0: 2 tâches, 1 nuit (23/11)\n"
            "  technique\u00a0: HVB-HOST-UNREACHABLE: host acme/hv01 (simulated): cannot connect"
            ) in text
    assert "[echec]" not in text
    # What to do: the runbook of the error code (no dashboard address configured), once.
    assert text.count("que faire\u00a0: hvbackup runbook HVB-HOST-UNREACHABLE") == 1
    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True) == 0  # never twice
    assert len(inbox.messages) == 1


def test_morning_summary_worst_first(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    with_smtp(s, port)
    s.reload()
    s.run("partages")
    s.run("erp")
    send_summary(s.loaded, s.sessions, date(2026, 11, 23), s.clock.now(), send_it=True)
    [msg] = inbox.messages
    assert msg["Subject"] == ("[ECHEC] Synthèse des sauvegardes du 23/11/2026 — 1 client : 1 "
                              "en échec")
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Échec — ACME (acme)\u00a0: 1 réussie, 1 en échec, 1 prévue plus tard" in text
    assert "- compta\u00a0: prévue le 23/11 23:00" in text  # scheduled later that night
    assert ("- erp\u00a0: Échec — ERP01 n'a pas été sauvegardé (un script de l'hôte a signalé "
            "une erreur)\n"
            "       technique\u00a0: HVB-SCRIPT-FAILED GUEST_VSS_FAILED: ERP01: host acme/hv01 "
            "(simulated): New-HvbCheckpoint.ps1 failed (GUEST_VSS_FAILED)") in text


def test_a_report_that_did_not_go_out_is_an_alert(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    night = date(2026, 11, 23)
    before = datetime(2026, 11, 24, 6, 59, tzinfo=UTC)  # 07:59 in Paris: deadline 08:00
    assert missing_digests(s.loaded, s.sessions, night, before) == []
    after = datetime(2026, 11, 24, 7, 1, tzinfo=UTC)
    assert missing_digests(s.loaded, s.sessions, night, after) == ["acme"]
    assert missing_digests(s.loaded, s.sessions, night, after) == []  # alerted once
    assert send_alerts(s.loaded, s.sessions, after, send_it=False) == 1
    outbox = sorted((tmp_path / "state" / "outbox").glob("*-alerts.eml"))
    sent = email.message_from_bytes(outbox[-1].read_bytes(), policy=email.policy.default)
    said = sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert ("ACME (acme) — rapport client non envoyé\u00a0: le compte rendu du 23/11/2026 n'est "
            "pas parti chez ACME avant 08:00\u00a0: le client n'a pas de nouvelles") in said
    assert "report_missing" not in said  # the kind's token stays in the JSON part only
    [data] = [p for p in sent.iter_attachments() if p.get_content_type() == "application/json"]
    assert b'"kind": "report_missing"' in data.get_content()
    # The report goes out later (resent by hand, relay back): the alert closes by itself and
    # the hotline's page stops showing it.
    from sqlalchemy import select

    from orchestrator.dashboard.problems import problems
    from orchestrator.history.models import AlertRow, ClientRow, EmailRow

    tz = s.loaded.config.msp.timezone
    assert [p.status for p in problems(s.sessions, tz=tz, now=s.clock.now())] == ["report"]
    with s.sessions() as session, session.begin():
        acme = session.scalars(select(ClientRow).where(ClientRow.key == "acme")).one()
        session.add(EmailRow(kind="digest", client_id=acme.id, report_date=night,
                             subject="rapport", status="sent", created_at=after))
    later = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert missing_digests(s.loaded, s.sessions, night, later) == []
    with s.sessions() as session:
        alert = session.scalars(select(AlertRow).where(AlertRow.kind == "report_missing")).one()
        assert alert.resolved_at == later
    assert problems(s.sessions, tz=s.loaded.config.msp.timezone, now=s.clock.now()) == []


def test_english_hotline_messages(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.config.write_text(s.config.read_text().replace("  hotline: [hotline@msp.example]",
                                                     "  hotline: [hotline@msp.example]\n"
                                                     "  language: en"))
    s.reload()
    s.run("erp")
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True)
    send_summary(s.loaded, s.sessions, date(2026, 11, 23), s.clock.now(), send_it=True)
    alert, summary = inbox.messages
    assert alert["Subject"] == "[hvbackup] 1 problem: ACME"
    assert "new problems since the last alert" in alert.get_body(("plain",)).get_content()
    assert summary["Subject"] == "[ECHEC] Backups summary of 23/11/2026 — 1 client: 1 failing"
    text = summary.get_body(("plain",)).get_content()
    assert "Failed — ACME (acme): 1 failed, 1 due later" in text
    assert "- erp: Failed — the backup could not be made (host unreachable)" in text
    assert "- compta: scheduled for 23/11 23:00" in text
    assert "\u00a0" not in text and "\u202f" not in text  # no French spacing in English
    assert summary["X-HVBackup-Status"] == "ECHEC"


def test_starttls_with_the_relays_private_ca(tmp_path: Path) -> None:
    import ssl

    from aiosmtpd.controller import Controller

    from tests.report.test_mail import Inbox
    from tests.servers import free_port

    cert, key = self_signed(tmp_path, "relay.test", "relay")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        s = Setup(tmp_path)
        with_smtp(s, controller.port)
        tls = f"  security: starttls\n  ca_file: {cert}"
        s.config.write_text(s.config.read_text().replace("  security: none", tls))
        s.reload()
        s.run("partages")
        from orchestrator.report.digest import send_digest

        _digest, email_row = send_digest(s.loaded, s.sessions, "acme", date(2026, 11, 23),
                                         s.clock.now(), send_it=True)
        assert email_row.status == "sent" and len(inbox.messages) == 1
    finally:
        controller.stop()




def host_down_with_a_dashboard_address(tmp_path: Path) -> Setup:
    """hv01 unreachable, and the dashboard's public address configured."""
    s = Setup(tmp_path, faults="{kind: unreachable}")
    s.config.write_text(s.config.read_text().replace(
        "  hotline: [hotline@msp.example]",
        "  hotline: [hotline@msp.example]\n  dashboard_url: https://sauvegardes.msp.example/"))
    s.reload()
    return s


def test_alerts_link_to_the_dashboard_when_its_address_is_known(tmp_path: Path) -> None:
    s = host_down_with_a_dashboard_address(tmp_path)
    uid = s.run("erp").uid
    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False) == 1
    [sent] = (tmp_path / "state" / "outbox").glob("*alerts*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"exécution\u00a0: https://sauvegardes.msp.example/runs/{uid}" in text
    assert ("que faire\u00a0: https://sauvegardes.msp.example/runbooks/HVB-HOST-UNREACHABLE?lang=fr"
            in text)


def test_alerts_and_summary_are_styled_like_the_digest_with_links(tmp_path: Path) -> None:
    s = host_down_with_a_dashboard_address(tmp_path)
    uid = s.run("erp").uid
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    send_summary(s.loaded, s.sessions, date(2026, 11, 23), s.clock.now(), send_it=False)
    outbox = tmp_path / "state" / "outbox"
    [alerts] = [_html(p) for p in outbox.glob("*alerts.eml")]
    [summary] = [_html(p) for p in outbox.glob("*summary.eml")]
    for html in (alerts, summary):
        assert "<pre" not in html  # not the text part in a box
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert "max-width:760px" in html and "background:#c0392b" in html
    assert (f'<a href="https://sauvegardes.msp.example/runs/{uid}">Voir l&#39;exécution</a>'
            in alerts)
    assert ('<a href="https://sauvegardes.msp.example/runbooks/HVB-HOST-UNREACHABLE?lang=fr">'
            "Que faire</a>") in alerts
    assert "<strong>ACME</strong> (acme), tâche erp" in alerts
    assert "sauvegarde en échec" in alerts
    assert '<a href="https://sauvegardes.msp.example/clients/acme">ACME</a>' in summary
    assert "Échec" in summary and "host acme/hv01 (simulated): cannot connect" in summary


def _html(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return message.get_body(("html",)).get_content()  # type: ignore[union-attr,no-any-return]
