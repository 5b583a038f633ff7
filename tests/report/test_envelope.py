"""What surrounds the words of every message: its Date in the MSP's time zone and at the time
it was made, attachment names a mail client can save, the MSP named with its phone and the
portal in the client's mail, and hotline links that lead somewhere without a dashboard."""

from __future__ import annotations

import email
import email.policy
from datetime import date
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import send_alerts, send_summary
from tests.world import Setup

NIGHT = date(2026, 11, 23)


def _outbox(root: Path) -> dict[str, EmailMessage]:
    found = {}
    for path in sorted((root / "state" / "outbox").glob("*.eml")):
        found[path.name] = email.message_from_bytes(path.read_bytes(),
                                                    policy=email.policy.default)
    return found  # type: ignore[return-value]


def _with_msp_details(s: Setup) -> None:
    s.config.write_text(s.config.read_text().replace(
        "  hotline: [hotline@msp.example]",
        "  hotline: [hotline@msp.example]\n  phone: 01 23 45 67 89\n"
        "  dashboard_url: https://sauvegardes.msp.example/"))
    s.reload()


def test_dates_are_the_msps_local_time_of_the_message(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    s.run("erp")
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    send_summary(s.loaded, s.sessions, NIGHT, s.clock.now(), send_it=False)
    send_digest(s.loaded, s.sessions, "acme", NIGHT, s.clock.now(), send_it=False)
    messages = _outbox(tmp_path)
    assert len(messages) == 3
    for name, msg in messages.items():
        assert msg["Date"].endswith("+0100"), (name, msg["Date"])  # Paris in November
        assert parsedate_to_datetime(msg["Date"]) == s.clock.now(), name
        [data] = [p for p in msg.iter_attachments()]
        filename = data.get_filename() or ""
        assert filename.startswith("hvbackup-") and filename.endswith("-2026-11-23.json")
        assert not set(filename) & set('*?"<>|:/\\'), filename


def test_the_client_reads_who_looks_after_its_backups(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    _with_msp_details(s)
    s.run("erp")
    send_digest(s.loaded, s.sessions, "acme", NIGHT, s.clock.now(), send_it=False)
    [msg] = _outbox(tmp_path).values()
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert "MSP" in part and "01 23 45 67 89" in part
        assert "https://sauvegardes.msp.example/clients/acme" in part


def test_without_a_dashboard_the_hotline_is_told_how_to_read_the_runbook(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, faults="{kind: unreachable}")
    s.run("erp")
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    [msg] = _outbox(tmp_path).values()
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "docs/runbooks" not in text
    assert "que faire\u00a0: hvbackup runbook HVB-HOST-UNREACHABLE" in text
    shown = cli("runbook", "HVB-HOST-UNREACHABLE")
    assert shown.code == 0 and "WinRM" in shown.out
    english = cli("runbook", "--lang", "en", "HVB-HOST-UNREACHABLE")
    assert english.code == 0 and english.out != shown.out
    unknown = cli("runbook", "HVB-NOPE")
    assert unknown.code != 0 and "HVB-NOPE" in unknown.err


def test_restore_and_keys_check_speak_local_time(tmp_path: Path, cli,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVBACKUP_PASSPHRASE", "passphrase of acme")
    s = Setup(tmp_path)
    s.run("partages")  # 23/11 21:00 UTC is 22:00 in Paris
    restored = cli("restore", "-c", str(s.config), "acme/partages", "--to",
                   str(tmp_path / "out"), "--key-file", str(tmp_path / "acme.key"))
    assert restored.code == 0, restored.err
    assert "23/11/2026 22:00" in restored.out and "T21:00" not in restored.out
    checked = cli("keys", "check", "-c", str(s.config), "acme", "--key-file",
                  str(tmp_path / "acme.key"))
    assert checked.code == 0, checked.err
    assert "23/11/2026 22:00" in checked.out and "T21:00" not in checked.out
