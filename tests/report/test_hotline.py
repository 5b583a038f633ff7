"""The hotline's messages through a real SMTP server: grouped alerts, the morning summary
worst first, and a client report that did not go out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from orchestrator.config import load_config
from orchestrator.report.hotline import missing_digests, send_alerts, send_summary
from tests.jobs.test_run import Setup
from tests.report.test_mail import quick_retries, smtp_server, with_smtp  # noqa: F401


def test_alerts_are_grouped_and_sent_once(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.loaded = load_config(s.config)
    s.ctx.loaded = s.loaded
    s.run("erp")
    s.run("compta")
    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True) == 2
    [msg] = inbox.messages
    assert msg["Subject"] == "[hvbackup] 2 problèmes : acme"
    assert msg["To"] == "hotline@msp.example"
    text = msg.get_body(("plain",)).get_content()
    assert "acme/erp [echec] host acme/hv01 (simulated): cannot connect" in text
    assert "acme/compta [echec]" in text
    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True) == 0  # never twice
    assert len(inbox.messages) == 1


def test_morning_summary_worst_first(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    with_smtp(s, port)
    s.loaded = load_config(s.config)
    s.ctx.loaded = s.loaded
    s.run("partages")
    s.run("erp")
    send_summary(s.loaded, s.sessions, date(2026, 11, 23), s.clock.now(), send_it=True)
    [msg] = inbox.messages
    assert msg["Subject"] == ("[ECHEC] Synthèse des sauvegardes du 23/11/2026 — 1 client(s) "
                              "en échec sur 1")
    text = msg.get_body(("plain",)).get_content()
    assert "ECHEC  ACME (acme) : 1/2 réussis" in text
    assert "- erp : ECHEC — ERP01: host acme/hv01 (simulated): New-HvbCheckpoint.ps1 failed " \
        "(GUEST_VSS_FAILED)" in text


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
    assert outbox and b"report_missing" in outbox[-1].read_bytes()
