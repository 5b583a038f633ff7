"""Contract end: backups stop on the date, the data goes 30 days later, audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.errors import UsageError
from orchestrator.history.models import AuditRow, ClientRow
from orchestrator.jobs.daemon import Daemon
from orchestrator.jobs.maintenance import maintain
from orchestrator.jobs.offboard import destroy_due, schedule_offboard
from orchestrator.report.hotline import send_summary
from tests.report.test_mail import smtp_server, with_smtp  # noqa: F401
from tests.world import Setup


def baie_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def test_offboarding_stops_backups_then_destroys_the_data(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert s.run("partages").status == "REUSSIE"
    dry = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "2026-11-30",
              "--dry-run")
    assert dry.code == 0 and "dry run: backups of acme would stop on 30/11/2026" in dry.out
    assert "site-a: " in dry.out and "site-b: " in dry.out
    with s.sessions() as session:
        assert session.scalars(select(ClientRow.offboard_on)).one() is None
    result = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "2026-11-30")
    assert result.code == 0, result.err
    assert "its data will be destroyed on 30/12/2026" in result.out

    s.clock.set(datetime(2026, 12, 1, 21, 30, tzinfo=UTC))
    stopped = s.run("erp")
    assert stopped.status == "ECHEC"
    assert "contract of acme ended on 30/11/2026" in stopped.headline.message
    daemon = Daemon(s.ctx)
    assert daemon.tick() == []  # the scheduler expects nothing from an ended contract
    daemon.wait_idle()  # (its daily maintenance leaves the ended contract alone)

    before = baie_files(tmp_path / "baie-a")
    assert destroy_due(s.loaded, s.sessions, datetime(2026, 12, 29, 12, tzinfo=UTC), "t") == []
    assert baie_files(tmp_path / "baie-a") == before
    preview = destroy_due(s.loaded, s.sessions, datetime(2026, 12, 30, 12, tzinfo=UTC), "t",
                          dry_run=True)
    assert [d.baie for d in preview] == ["site-a", "site-b"]
    assert baie_files(tmp_path / "baie-a") == before
    done = destroy_due(s.loaded, s.sessions, datetime(2026, 12, 30, 12, tzinfo=UTC), "t")
    assert sum(d.files for d in done) > 0
    assert baie_files(tmp_path / "baie-a") == 0 and baie_files(tmp_path / "baie-b") == 0
    with s.sessions() as session:
        actions = [a.action for a in session.scalars(select(AuditRow).order_by(AuditRow.id))
                   if a.action != "maintenance.day"]  # the scheduler's day, recorded too
        assert actions[-2:] == ["client.offboard", "client.destroy"]
        assert session.scalars(select(ClientRow.destroyed_at)).one() is not None


def test_offboard_date_must_be_a_date(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    result = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "fin novembre")
    assert result.code == 2 and "is not a date" in result.err
    assert schedule_offboard(s.sessions, "acme", date(2027, 1, 31), "t",
                             s.clock.now()) == date(2027, 1, 31) + timedelta(days=30)


def test_a_past_end_date_is_refused_and_nothing_is_recorded(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert s.run("partages").status == "REUSSIE"
    for dry in ([], ["--dry-run"]):
        result = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "2026-11-01",
                     *dry)
        assert result.code == 2
        assert "--on 2026-11-01 is in the past (today is 2026-11-23)" in result.err
        assert "give --on 2026-11-23" in result.err
    with s.sessions() as session:
        assert session.scalars(select(ClientRow.offboard_on)).one() is None
        assert [a.action for a in session.scalars(select(AuditRow))
                if a.action.startswith("client.")] == []
    with pytest.raises(UsageError, match="is in the past"):
        schedule_offboard(s.sessions, "acme", date(2026, 11, 22), "t", s.clock.now())
    today = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "2026-11-23")
    assert today.code == 0 and "will be destroyed on 23/12/2026" in today.out


def test_the_grace_counts_from_the_day_the_offboarding_was_recorded(tmp_path: Path) -> None:
    """An end date in the past recorded before dates were checked: the daily pass still waits
    30 days from the day it was recorded."""
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert s.run("partages").status == "REUSSIE"
    recorded = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with s.sessions() as session, session.begin():
        row = session.scalars(select(ClientRow).where(ClientRow.key == "acme")).one()
        row.offboard_on = date(2026, 10, 1)
        session.add(AuditRow(at=recorded, actor="t", action="client.offboard", target="acme",
                             details={"backups_stop": "2026-10-01",
                                      "destroy_on": "2026-10-31"}))
    files = baie_files(tmp_path / "baie-a"), baie_files(tmp_path / "baie-b")
    assert all(files)
    s.clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))  # the next daily pass (11:00)
    assert maintain(s.ctx, s.clock.now()).destroyed == []
    assert (baie_files(tmp_path / "baie-a"), baie_files(tmp_path / "baie-b")) == files
    s.clock.set(datetime(2026, 12, 22, 10, 0, tzinfo=UTC))
    assert maintain(s.ctx, s.clock.now()).destroyed == []
    s.clock.set(datetime(2026, 12, 23, 10, 0, tzinfo=UTC))  # 30 days after it was recorded
    assert [d.baie for d in maintain(s.ctx, s.clock.now()).destroyed] == ["site-a", "site-b"]
    assert baie_files(tmp_path / "baie-a") == 0 and baie_files(tmp_path / "baie-b") == 0


def summary_text(s: Setup, inbox: Any, now: datetime) -> str:
    night = (now - timedelta(days=1)).date()
    send_summary(s.loaded, s.sessions, night, now, send_it=True)
    body: str = inbox.messages[-1].get_body(("plain",)).get_content().replace("\r\n", "\n")
    return body


def test_the_hotline_summary_announces_the_destruction_the_days_before(
        tmp_path: Path, smtp_server: Any) -> None:  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    with_smtp(s, port)
    s.reload()
    assert schedule_offboard(s.sessions, "acme", date(2026, 11, 30), "t",
                             s.clock.now()) == date(2026, 12, 30)
    morning = datetime(2026, 12, 22, 7, 0, tzinfo=UTC)  # 08:00 in Paris, 8 days before
    assert "DESTRUCTION" not in summary_text(s, inbox, morning)
    text = summary_text(s, inbox, morning + timedelta(days=1))
    assert text.startswith("À NOTER — fin de contrat, destruction des données\u00a0:\n")
    assert ("   - DESTRUCTION PRÉVUE le 30/12/2026 (dans 7\u00a0jours)\u00a0: toutes les "
            "sauvegardes d'ACME (acme) sur site-a, site-b\u202f; sauvegardes arrêtées depuis le "
            "30/11/2026. Pour reporter\u00a0: hvbackup client offboard acme --on AAAA-MM-JJ"
            ) in text
    assert "NON EXECUTEE" not in text and "ECHEC" not in text  # nothing was expected of acme
    from orchestrator.history.queries import night_expected
    from orchestrator.report.digest import night_bounds

    with s.sessions() as session:  # no client report is owed after the contract's end
        assert not night_expected(session, "acme", *night_bounds(s.loaded, date(2026, 12, 22)))
        assert night_expected(session, "acme", *night_bounds(s.loaded, date(2026, 11, 29)))
    assert "(dans 3\u00a0jours)" in summary_text(s, inbox, morning + timedelta(days=5))
    assert "le 30/12/2026 (demain)" in summary_text(s, inbox, morning + timedelta(days=7))
    assert "(aujourd'hui, à la maintenance du jour)" in summary_text(
        s, inbox, morning + timedelta(days=8))
    s.config.write_text(s.config.read_text().replace("  hotline: [hotline@msp.example]",
                                                     "  hotline: [hotline@msp.example]\n"
                                                     "  language: en"))
    s.reload()
    text = summary_text(s, inbox, morning + timedelta(days=6))
    assert ("   - DESTRUCTION SCHEDULED on 30/12/2026 (in 2 days): every backup of ACME "
            "(acme) on site-a, site-b; backups stopped since 30/11/2026. To postpone: "
            "hvbackup client offboard acme --on YYYY-MM-DD") in text
