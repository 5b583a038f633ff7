"""The simulated host shares each run's staging folder to the connected account, as
Invoke-HvbSqlBackup.ps1 and New-HvbCheckpoint.ps1 -Mode export do (docs/lab/shares.md): the
paths to read are ``\\\\HOST\\hvb-<run>-sql$\\...`` / ``hvb-<run>-vm$``, Remove-HvbStaging
removes the share before the folder, the sweep removes the shares of runs that are over; a
host reached through the JEA endpoint refuses checkpoint mode."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts.simulated import SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.hosts.test_simulated import ROOTS

STAGING = "D:\\hvbackup-staging"


def make_host(root: Path, clock: FrozenClock, jea: bool = True) -> SimulatedHost:
    spec = WorldSpec(vms=["ERP01"], sql={"SQL01\\COMPTA": []}, seed=3, vm_disk_mb=1)
    return SimulatedHost("acme/hv01", root, spec, now=clock.now,
                         today=lambda: clock.now().date(), roots=ROOTS, jea=jea)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sql_dumps_are_read_through_the_run_share(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    made = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath=STAGING,
                    RunId="r1")
    assert made["share"] == "hvb-r1-sql$"
    compta = next(d for d in made["databases"] if d["name"] == "COMPTA")
    assert compta["file"] == f"{STAGING}\\r1\\COMPTA.bak"  # the name recorded
    assert compta["exposed"] == "\\\\HV01\\hvb-r1-sql$\\COMPTA.bak"  # where it is read
    assert sha(host.local_path(compta["exposed"])) == sha(host.local_path(compta["file"]))
    share = host.world.state["run_shares"]["hvb-r1-sql$"]
    assert (share["path"], share["reader"]) == (f"{STAGING}\\r1", "HV01\\hvbackup")
    # NTFS: the connected account reads the run folder (the service SID writes it).
    assert host.world.state["acl_read"][f"{STAGING}\\r1".lower()] == ["HV01\\hvbackup"]
    removed = host.run("Remove-HvbStaging", StagingPath=STAGING, RunId="r1")
    assert removed["shares"] == [{"name": "hvb-r1-sql$", "removed": True}]
    assert removed["removed"] and host.world.state["run_shares"] == {}
    assert not (tmp_path / "shares" / "hvb-r1-sql$").is_symlink()


def test_a_vm_export_is_read_through_the_run_share(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    made = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", Mode="export",
                    StagingPath=STAGING)
    assert made["share"] == "hvb-r1-vm$"
    disk = made["files"][0]
    assert disk["path"] == f"{STAGING}\\r1\\Virtual Hard Disks\\ERP01.vhdx"
    assert disk["exposed"] == "\\\\HV01\\hvb-r1-vm$\\Virtual Hard Disks\\ERP01.vhdx"
    assert all(f["exposed"].startswith("\\\\HV01\\hvb-r1-vm$\\") for f in made["files"])
    assert sha(host.local_path(disk["exposed"])) == sha(host.local_path(disk["path"]))
    # A second VM of the run exports into the same folder: the share is kept, not doubled.
    again = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", Mode="export",
                     StagingPath=STAGING)
    assert again["share"] == "hvb-r1-vm$" and list(host.world.state["run_shares"]) == [
        "hvb-r1-vm$"]
    host.run("Remove-HvbCheckpoint", VMName="ERP01", CheckpointName=made["checkpoint_name"])
    host.run("Remove-HvbStaging", StagingPath=STAGING, RunId="r1")
    assert host.world.state["run_shares"] == {}


def test_checkpoint_mode_is_refused_through_the_jea_endpoint(tmp_path: Path,
                                                             clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    with pytest.raises(ScriptFailed, match="CHECKPOINT_MODE_REFUSED") as info:
        host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    assert "set mode: export" in info.value.message
    assert host.run("Get-HvbInventory")["vms"][0]["checkpoints"] == []  # nothing taken
    admin = make_host(tmp_path / "admin", clock, jea=False)
    assert admin.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")["ok"]


def test_the_sweep_removes_the_shares_of_runs_that_are_over(tmp_path: Path,
                                                            clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath=STAGING, RunId="old")
    host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath=STAGING, RunId="gone")
    # A run killed after its folder was removed by hand: the share is left, its folder gone.
    import shutil
    shutil.rmtree(host.local_path(f"{STAGING}\\gone"))
    clock.advance(timedelta(hours=2))
    host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath=STAGING, RunId="now")
    swept = host.run("Clear-HvbLeftovers", KeepRunId="mine", SkipCheckpoints=True)
    # "now" (another job, running) and "old" (its folder there, < 24 h) are kept.
    assert [s["name"] for s in swept["run_shares"]] == ["hvb-gone-sql$"]
    clock.advance(timedelta(hours=23))
    swept = host.run("Clear-HvbLeftovers", KeepRunId="now", SkipCheckpoints=True)
    assert [(s["name"], s["removed"]) for s in swept["run_shares"]] == [("hvb-old-sql$", True)]
    assert list(host.world.state["run_shares"]) == ["hvb-now-sql$"]


def test_a_sql_job_sweeps_the_share_a_crashed_sql_run_left(tmp_path: Path) -> None:
    """A SQL run killed after Invoke-HvbSqlBackup left hvb-<run>-sql$ behind (its folder
    removed by hand): the next SQL job of that host removes it in its sweep, says so in the
    run log, and keeps its own; a share that is not hvbackup's is never touched."""
    import shutil

    from sqlalchemy import select

    from orchestrator.history.models import RunEventRow, RunRow, RunStepRow
    from tests.world import SIMULATED, Setup

    s = Setup(tmp_path, simulated=SIMULATED + ", jea: true", vm="\n        mode: export")
    host = s.host()
    host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath=STAGING,
             RunId="crashed")
    shutil.rmtree(host.local_path(f"{STAGING}\\crashed"))
    # Someone's own share of the staging folder, named like none of hvbackup's.
    host.world.state["run_shares"]["hvb-compta$"] = {
        "path": STAGING, "reader": "HV01\\compta", "run": "", "created_utc": "2026-01-01T00:00:00Z"}
    host.world.save()
    result = s.run("compta")
    assert result.status == "REUSSIE", result
    assert set(s.host().world.state["run_shares"]) == {"hvb-compta$"}  # the host as it is now
    with s.sessions() as session:
        run = session.scalars(select(RunRow).where(RunRow.uid == result.uid)).one()
        steps = [st.name for st in session.scalars(select(RunStepRow).where(
            RunStepRow.run_id == run.id).order_by(RunStepRow.seq))]
        events = [e.message for e in session.scalars(select(RunEventRow).where(
            RunEventRow.run_id == run.id))]
    assert steps[0] == "sweep leftovers"
    assert any("hvb-crashed-sql$" in e for e in events), events


def test_the_sweep_takes_only_hvbackup_s_run_shares(tmp_path: Path, clock: FrozenClock) -> None:
    """By exact name (hvb-<run>-sql$ / hvb-<run>-vm$) and by place (inside a staging root):
    a share of the same look elsewhere, or of another name in the staging root, stays."""
    host = make_host(tmp_path, clock)
    old = "2026-01-01T00:00:00Z"
    host.world.state["run_shares"] = {
        "hvb-r9-sql$": {"path": f"{STAGING}\\r9", "run": "r9", "created_utc": old},
        "hvb-r9-sql-copie$": {"path": f"{STAGING}\\r9", "run": "r9", "created_utc": old},
        "hvb-r8-vm$": {"path": "D:\\Partages\\r8", "run": "r8", "created_utc": old},
        "hvb-staging$": {"path": STAGING, "run": "", "created_utc": old}}
    host.world.save()
    swept = host.run("Clear-HvbLeftovers", KeepRunId="now", SkipCheckpoints=True,
                     SkipShadowCopies=True)
    assert [(s["name"], s["removed"]) for s in swept["run_shares"]] == [("hvb-r9-sql$", True)]
    assert sorted(host.world.state["run_shares"]) == [
        "hvb-r8-vm$", "hvb-r9-sql-copie$", "hvb-staging$"]
