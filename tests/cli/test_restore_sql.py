"""``hvbackup restore-sql``: a SQL Server database restored from its backup on the simulated
host, under a new name by default; over production only with --overwrite-production and the
name typed again; every attempt and its outcome in the audit log."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from orchestrator.history.models import AuditRow
from tests.world import Setup


def _audits(s: Setup) -> list[dict[str, Any]]:
    with s.sessions() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.action == "sql.restore")
                               .order_by(AuditRow.id))
        return [{"actor": r.actor, "target": r.target, **r.details} for r in rows]


def _bak_on_the_host(s: Setup, tmp_path: Path) -> str:
    """What a technician does first: the restore point's .bak back from the baie, copied into
    the host's restore folder."""
    assert s.run("compta").status == "REUSSIE"
    out = tmp_path / "out"
    s.restore("compta", out)
    bak = next(out.rglob("COMPTA.bak"))
    there = s.host().local_path("D:\\Restore\\COMPTA.bak")
    there.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bak, there)
    return "D:\\Restore\\COMPTA.bak"


def test_a_restore_goes_under_a_new_name_and_is_audited(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bak = _bak_on_the_host(s, tmp_path)
    result = cli("restore-sql", "-c", str(s.config), "acme/compta", "--database", "COMPTA",
                 "--backup-file", bak, "--target-name", "COMPTA_copie")
    assert result.code == 0, result.err
    assert "restored COMPTA from D:\\Restore\\COMPTA.bak as COMPTA_copie on SQL01\\COMPTA" \
        in result.out
    databases = s.host().world.state["sql"]["SQL01\\COMPTA"]["databases"]
    assert databases["COMPTA_copie"]["restored_by_hvbackup"]
    audits = _audits(s)
    assert [a["outcome"] for a in audits] == ["requested", "done"]
    assert audits[1]["target"] == "acme/hv01/SQL01\\COMPTA/COMPTA_copie"
    assert audits[1]["overwrote_production"] is False and audits[0]["actor"].startswith("cli:")


def test_over_production_needs_the_name_typed_again_and_is_audited(cli, tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bak = _bak_on_the_host(s, tmp_path)
    args = ("restore-sql", "-c", str(s.config), "acme/compta", "--database", "COMPTA",
            "--backup-file", bak)
    refused = cli(*args, "--overwrite-production")
    assert refused.code == 2
    assert "add --confirm COMPTA to say so" in refused.err
    assert _audits(s) == []  # nothing asked of the host
    # --replace alone: the host refuses a database no restore made, and the attempt is kept.
    failed = cli(*args, "--target-name", "COMPTA", "--replace")
    assert failed.code != 0 and "TARGET_NOT_HVBACKUP" in failed.err
    assert [(a["outcome"], a.get("script_code")) for a in _audits(s)] == [
        ("requested", None), ("failed", "TARGET_NOT_HVBACKUP")]
    done = cli(*args, "--overwrite-production", "--confirm", "COMPTA")
    assert done.code == 0, done.err
    assert "over the production database; recorded in the audit log" in done.out
    last = _audits(s)[-2:]
    assert [a["outcome"] for a in last] == ["requested", "done"]
    assert last[0]["OverwriteProduction"] is True and last[1]["overwrote_production"] is True
    assert last[1]["target"] == "acme/hv01/SQL01\\COMPTA/COMPTA"
    assert s.host().world.state["sql"]["SQL01\\COMPTA"]["databases"]["COMPTA"][
        "restored_by_hvbackup"] is False  # the next --replace alone refuses it again


def test_a_dry_run_changes_nothing_and_a_job_of_another_type_is_refused(
        cli, tmp_path: Path) -> None:
    s = Setup(tmp_path)
    bak = _bak_on_the_host(s, tmp_path)
    dry = cli("restore-sql", "-c", str(s.config), "acme/compta", "--database", "COMPTA",
              "--backup-file", bak, "--overwrite-production", "--confirm", "COMPTA",
              "--dry-run")
    assert dry.code == 0, dry.err
    assert "dry run on acme/hv01: would restore COMPTA as COMPTA (over the existing" in dry.out
    assert _audits(s) == []
    other = cli("restore-sql", "-c", str(s.config), "acme/erp", "--database", "X",
                "--backup-file", bak)
    assert other.code == 2 and "acme/erp is a hyperv-vm job" in other.err
