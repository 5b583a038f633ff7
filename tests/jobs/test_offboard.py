"""Contract end: backups stop on the date, the data goes 30 days later, audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import AuditRow, ClientRow
from orchestrator.jobs.daemon import Daemon
from orchestrator.jobs.offboard import destroy_due, schedule_offboard
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
        actions = [a.action for a in session.scalars(select(AuditRow).order_by(AuditRow.id))]
        assert actions[-2:] == ["client.offboard", "client.destroy"]
        assert session.scalars(select(ClientRow.destroyed_at)).one() is not None


def test_offboard_date_must_be_a_date(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    result = cli("client", "offboard", "-c", str(s.config), "acme", "--on", "fin novembre")
    assert result.code == 2 and "is not a date" in result.err
    assert schedule_offboard(s.sessions, "acme", date(2027, 1, 31), "t",
                             s.clock.now()) == date(2027, 1, 31) + timedelta(days=30)
