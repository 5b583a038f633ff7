"""`hvbackup backup` and `hvbackup nights` as a technician runs them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.world import Setup


def test_backup_command_reports_and_exits_by_status(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path)
    ok = cli("backup", "-c", str(s.config), "acme/partages")
    assert ok.code == 0, ok.err
    assert "REUSSIE: run " in ok.out and "snapshot " in ok.out
    assert "consistency application" in ok.out


def test_backup_command_echec_exits_1_with_what_to_check(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    result = cli("backup", "-c", str(s.config), "acme/erp")
    assert result.code == 1
    assert "ECHEC: run " in result.out
    assert "error HVB-HOST-UNREACHABLE: host acme/hv01 (simulated): cannot connect" in result.out


def test_backup_needs_the_schema(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path)
    (tmp_path / "state" / "hvbackup.db").unlink()
    result = cli("backup", "-c", str(s.config), "acme/erp")
    assert result.code == 6
    assert "run 'hvbackup db upgrade -c FILE' first" in result.err


def test_nights_runs_every_scheduled_job(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01, dates: [2026-11-17]}",
              consistency="application-or-crash")
    result = cli("nights", "-c", str(s.config), "--start", "2026-11-16", "--nights", "2")
    assert result.code == 0, result.err
    rows = [line.split() for line in result.out.splitlines() if "/11/2026" in line
            and "acme/" in line and len(line.split()) > 5]
    statuses = {(r[1], r[3]): r[4] for r in rows}
    assert statuses == {
        ("16/11/2026", "acme/partages"): "REUSSIE", ("16/11/2026", "acme/erp"): "REUSSIE",
        ("16/11/2026", "acme/compta"): "REUSSIE", ("17/11/2026", "acme/partages"): "REUSSIE",
        ("17/11/2026", "acme/erp"): "AVERTISSEMENT", ("17/11/2026", "acme/compta"): "REUSSIE"}
    again = cli("nights", "-c", str(s.config), "--start", "2026-11-16", "--nights", "1")
    assert "skipped: the 2026-11-16 20:00 UTC run of acme/partages is already in the history" \
        in again.out


def test_prune_command_dry_run_then_for_real(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    s = Setup(tmp_path)
    text = s.config.read_text().replace('        schedule: "daily 21:00"',
                                        '        schedule: "daily 21:00"\n'
                                        '        retention: {keep_last: 1}')
    s.config.write_text(text)
    s.reload()
    s.run("partages")
    s.clock.advance(timedelta(days=1))
    live = s.host().local_path("D:\\Partages")
    for path in sorted(live.rglob("*.txt"))[:26]:
        path.unlink()  # most files deleted on the share: the first pack is mostly waste
    s.run("partages")  # retention (keep_last: 1) forgets the first restore point
    dry = cli("prune", "-c", str(s.config), "--dry-run")
    assert dry.code == 0, dry.err
    assert "acme: would forget 0 restore point(s)" in dry.out
    assert "site-a: 1 restore point(s) kept, 1 pack(s) would be deleted" in dry.out
    real = cli("prune", "-c", str(s.config))
    assert real.code == 0 and "acme: forgot 0 restore point(s)" in real.out
    assert "site-a: 1 restore point(s) kept, 1 pack(s) deleted" in real.out
    again = cli("prune", "-c", str(s.config))
    assert "site-a: 1 restore point(s) kept, 0 pack(s) deleted" in again.out
    out = tmp_path / "out"
    s.restore("partages", out)
    assert len(list(out.rglob("*.txt"))) == len(list(live.rglob("*.txt")))


def test_a_prune_dry_run_counts_what_retention_would_forget(cli, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A technician shortens a job's retention, asks what a prune would do, then prunes: the
    dry run announces what the real prune deletes."""
    from datetime import timedelta

    s = Setup(tmp_path)
    s.run("partages")
    s.clock.advance(timedelta(days=1))
    live = s.host().local_path("D:\\Partages")
    for path in sorted(live.rglob("*.txt"))[:26]:
        path.unlink()
    s.run("partages")
    s.config.write_text(s.config.read_text().replace(
        '        schedule: "daily 21:00"',
        '        schedule: "daily 21:00"\n        retention: {keep_last: 1}'))
    clock.set(s.clock.now() + timedelta(hours=1))  # the next morning, as the technician
    dry = cli("prune", "-c", str(s.config), "--client", "acme", "--dry-run")
    assert dry.code == 0, dry.err
    assert "acme: would forget 1 restore point(s)" in dry.out
    announced = re.search(r"site-a: 1 restore point\(s\) kept, (\d+) pack\(s\) would be deleted",
                          dry.out)
    assert announced, dry.out
    real = cli("prune", "-c", str(s.config), "--client", "acme")
    assert real.code == 0, real.err
    assert "acme: forgot 1 restore point(s)" in real.out
    assert f"site-a: 1 restore point(s) kept, {announced.group(1)} pack(s) deleted" in real.out
    assert int(announced.group(1)) >= 1
