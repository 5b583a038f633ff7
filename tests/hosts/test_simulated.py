"""The simulated host behaves like a Hyper-V host seen through powershell/, faults included."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import HostTimeout, HostUnreachable, ScriptFailed
from orchestrator.hosts import simroots
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import BLOCK, WorldSpec

TODAY = date(2026, 11, 23)

# As Initialize-HvbHost.ps1 -StagingRoot D:\hvbackup-staging, D:\s -ShareRoot D:\Partages
# would record them (D:\s: the short staging folder of the SQL tests).
ROOTS = simroots.onboard(["D:\\hvbackup-staging", "D:\\s"], ["D:\\Partages"], ["D:\\Restore"])


def make_host(root: Path, clock: FrozenClock, *faults: Fault, seed: int = 1,
              sleeps: list[float] | None = None) -> SimulatedHost:
    spec = WorldSpec(vms=["ERP01", "DC01"], sql={"SQL01\\COMPTA": []}, shares=["D:\\Partages"],
                     seed=seed, vm_disk_mb=4, daily_change_percent=5, share_files=60)
    return SimulatedHost(
        "acme/hv01", root, spec, now=clock.now,
        today=lambda: clock.now().date(), faults=faults,
        sleep=(sleeps.append if sleeps is not None else lambda s: None), roots=ROOTS,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inventory_lists_what_the_jobs_name(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    inv = host.run("Get-HvbInventory")
    assert [vm["name"] for vm in inv["vms"]] == ["DC01", "ERP01"]
    erp = inv["vms"][1]
    assert erp["vss"] == {"present": True, "enabled": True, "healthy": True, "status": "Ok"}
    assert erp["disks"][0]["path"] == "D:\\Hyper-V\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"
    assert erp["disks"][0]["size_bytes"] == 4 * 1024 * 1024
    # Sparse like a real dynamic VHDX: less allocated than its size.
    assert erp["disks"][0]["file_size_bytes"] < erp["disks"][0]["size_bytes"]
    assert [d["name"] for d in inv["sql"][0]["databases"]] == [
        "COMPTA", "PAIE", "master", "model", "msdb"]  # every database but tempdb
    assert {v["drive"] for v in inv["volumes"]} == {"C:", "D:"}
    assert inv["leftovers"] == {"checkpoints": [], "shadow_copies": []}


def test_same_seed_same_bytes_and_days_change_a_fraction(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    a = make_host(tmp_path / "a", clock)
    b = make_host(tmp_path / "b", clock)
    disk = "D:\\Hyper-V\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"
    a.run("Get-HvbInventory")
    b.run("Get-HvbInventory")
    assert sha(a.local_path(disk)) == sha(b.local_path(disk))
    before = a.local_path(disk).read_bytes()
    clock.advance(timedelta(days=1))
    a.run("Get-HvbInventory")
    after = a.local_path(disk).read_bytes()
    changed = sum(before[i:i + BLOCK] != after[i:i + BLOCK] for i in range(0, len(before), BLOCK))
    assert changed == round(len(before) // BLOCK * 5 / 100)  # daily_change_percent: 5
    other_seed = make_host(tmp_path / "c", clock, seed=2)
    other_seed.run("Get-HvbInventory")
    assert sha(other_seed.local_path(disk)) != sha(a.local_path(disk))


def test_state_persists_between_sessions(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    host.close()
    again = make_host(tmp_path, clock)
    names = [cp["name"] for cp in again.run("Get-HvbInventory")["vms"][1]["checkpoints"]]
    assert names == ["hvbackup-r1"]


def test_checkpoint_freezes_the_chain_and_removal_merges(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    cp = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    assert cp["consistency"] == "application" and not cp["reused"]
    assert cp["disks"][0]["chain"] == [cp["disks"][0]["path"]]
    assert cp["configuration"]["generation"] == 2
    again = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    assert again["reused"] and again["checkpoint_id"] == cp["checkpoint_id"]  # idempotent
    removed = host.run("Remove-HvbCheckpoint", VMName="ERP01", CheckpointName="hvbackup-r1")
    assert removed["removed"] and removed["merged"]
    gone = host.run("Remove-HvbCheckpoint", VMName="ERP01", CheckpointName="hvbackup-r1")
    assert gone["already_absent"]
    assert not list(tmp_path.rglob("*.avhdx"))


def test_unknown_vm(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    with pytest.raises(ScriptFailed, match=r"VM_NOT_FOUND.*check the VM name") as info:
        host.run("New-HvbCheckpoint", VMName="NOPE", RunId="r1")
    assert info.value.script_code == "VM_NOT_FOUND"


def test_guest_vss_failure_without_fallback(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("guest-vss-failure", "ERP01"))
    with pytest.raises(ScriptFailed, match="GUEST_VSS_FAILED"):
        host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    inv = host.run("Get-HvbInventory")
    assert inv["vms"][1]["checkpoints"] == []  # nothing left behind
    assert inv["vms"][1]["vss"]["healthy"] is False
    # DC01 is not affected.
    assert host.run("New-HvbCheckpoint", VMName="DC01", RunId="r1")["consistency"] == "application"


def test_guest_vss_failure_with_crash_consistent_fallback(tmp_path: Path,
                                                          clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("guest-vss-failure", "ERP01"))
    cp = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", AllowCrashConsistent=True)
    assert cp["consistency"] == "crash"
    assert "Volume Shadow Copy" in cp["vss_error"]


def test_fault_applies_only_on_its_dates(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("guest-vss-failure", on=(TODAY + timedelta(days=1),)))
    assert host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")["consistency"] == "application"
    clock.advance(timedelta(days=1))
    with pytest.raises(ScriptFailed, match="GUEST_VSS_FAILED"):
        host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r2")


def test_a_merge_outlives_its_checkpoint(tmp_path: Path, clock: FrozenClock) -> None:
    """Remove-VMSnapshot drops the checkpoint object and merges afterwards: a stuck merge is in
    no checkpoint list (the sweep cannot see it); the inventory shows the .avhdx still used."""
    host = make_host(tmp_path, clock, Fault("merge-stuck", "ERP01", on=(TODAY,)))
    host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    removed = host.run("Remove-HvbCheckpoint", VMName="ERP01", CheckpointName="hvbackup-r1")
    assert removed["removed"] and not removed["merged"]
    assert removed["remaining_files"][0].endswith(".avhdx")
    inv = host.run("Get-HvbInventory")
    erp = next(v for v in inv["vms"] if v["name"] == "ERP01")
    assert erp["checkpoints"] == [] and inv["leftovers"]["checkpoints"] == []
    assert erp["unmerged_files"] == removed["remaining_files"]
    assert host.run("Clear-HvbLeftovers", KeepRunId="r2")["checkpoints"] == []
    clock.advance(timedelta(days=1))  # the merge ends once nothing holds it
    inv = host.run("Get-HvbInventory")
    assert next(v for v in inv["vms"] if v["name"] == "ERP01")["unmerged_files"] == []
    assert not list(tmp_path.rglob("*.avhdx"))


def test_leftover_checkpoint_from_a_crash_is_swept_not_the_current_run(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("leftover-checkpoint", "DC01"))
    host.run("New-HvbCheckpoint", VMName="DC01", RunId="r2")
    dry = host.run("Clear-HvbLeftovers", KeepRunId="r2", DryRun=True)
    assert [c["name"] for c in dry["checkpoints"]] == ["hvbackup-crashed-20261123"]
    assert not dry["checkpoints"][0]["removed"]
    swept = host.run("Clear-HvbLeftovers", KeepRunId="r2")
    assert [c["name"] for c in swept["checkpoints"]] == ["hvbackup-crashed-20261123"]
    names = [c["name"] for c in host.run("Get-HvbInventory")["vms"][0]["checkpoints"]]
    assert names == ["hvbackup-r2"]
    # A crash happens once: the same day does not bring it back.
    assert host.run("Clear-HvbLeftovers", KeepRunId="r2")["checkpoints"] == []


def test_host_unreachable(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("unreachable"))
    with pytest.raises(HostUnreachable, match=r"acme/hv01.*cannot connect") as info:
        host.run("Get-HvbInventory")
    assert info.value.permanent is False and info.value.exit_code == 3


def test_slow_host_times_out(tmp_path: Path, clock: FrozenClock) -> None:
    sleeps: list[float] = []
    host = make_host(tmp_path, clock, Fault("slow", delay_s=120), sleeps=sleeps)
    with pytest.raises(HostTimeout, match="did not finish within 30 s"):
        host.run("Get-HvbInventory", timeout_s=30)
    host.run("Get-HvbInventory", timeout_s=600)
    assert sleeps == [30, 120]


def test_sql_backup_and_verify(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                      StagingPath="D:\\hvbackup-staging", RunId="r1")
    assert result["compression"] is False  # unless the job asks (tests/hosts/test_simsql.py)
    assert [(d["name"], d["verified"]) for d in result["databases"]] == [
        ("COMPTA", True), ("PAIE", True)]
    bak = host.local_path(result["databases"][0]["file"])
    assert bak.stat().st_size == result["databases"][0]["size_bytes"]
    freed = host.run("Remove-HvbStaging", StagingPath="D:\\hvbackup-staging", RunId="r1")
    assert freed["removed"] and freed["bytes_freed"] > 0 and not bak.exists()


def test_sql_faults_are_per_database(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("verifyonly-failure", "PAIE"),
                     Fault("staging-full", "COMPTA"))
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                      StagingPath="D:\\hvbackup-staging", RunId="r1", Database=["all"])
    errors = {d["name"]: d["error"]["code"] for d in result["databases"]}
    assert errors == {"COMPTA": "STAGING_FULL", "PAIE": "SQL_VERIFY_FAILED"}


def test_sql_unknown_instance_and_database(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    with pytest.raises(ScriptFailed, match="SQL_CONNECT_FAILED"):
        host.run("Invoke-HvbSqlBackup", Instance="SQL02\\X", StagingPath="D:\\s", RunId="r1")
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Database=["NOPE"])
    assert result["databases"][0]["error"]["code"] == "DB_NOT_FOUND"


def test_sql_restore_to_a_new_name(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    bak = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                   RunId="r1")["databases"][0]["file"]
    restored = host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA", BackupFile=bak,
                        DatabaseName="COMPTA")
    assert restored["database"] == "COMPTA_restore_202611232100"
    with pytest.raises(ScriptFailed, match="TARGET_EXISTS"):
        host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA", BackupFile=bak,
                 DatabaseName="COMPTA", TargetName="COMPTA")


def test_shadow_copy_is_frozen_while_the_share_changes(tmp_path: Path,
                                                       clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    made = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")
    exposed = made["paths"][0]["exposed"]
    # Read through a per-run share of the copy, never a drive path (admin share) nor a link.
    assert exposed == "\\\\HV01\\hvb-r1-1$\\Partages"
    shadow = made["shadows"][0]
    assert shadow["share"] == "hvb-r1-1$"
    assert shadow["link"] == "C:\\ProgramData\\hvbackup\\shadow\\r1-1"
    # Writers take part, and the copy is not one of the users' Previous Versions.
    assert shadow["writers"] and not shadow["client_accessible"]
    frozen = {p.relative_to(host.local_path(exposed)): sha(p)
              for p in host.local_path(exposed).rglob("*") if p.is_file()}
    live = host.local_path("D:\\Partages")
    assert frozen == {p.relative_to(live): sha(p) for p in live.rglob("*") if p.is_file()}
    (live / "dossier0" / "new.txt").write_text("written during the backup")
    assert not (host.local_path(exposed) / "dossier0" / "new.txt").exists()
    inv = host.run("Get-HvbInventory")
    assert [s["id"] for s in inv["leftovers"]["shadow_copies"]] == [made["shadows"][0]["id"]]
    removed = host.run("Remove-HvbShadowCopy", ShadowId=[made["shadows"][0]["id"]], RunId="r1",
                       ShareName=["hvb-r1-1$"], LinkPath=[shadow["link"]])
    assert removed["shadow_copies"][0]["removed"] and removed["shares"][0]["removed"]
    assert live.exists()  # the mount folder went alone, nothing through it
    assert not host.local_path(exposed).exists()
    assert host.run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_two_files_jobs_of_one_host_at_once_keep_each_other_s_shadow_copy(
        tmp_path: Path, clock: FrozenClock) -> None:
    """Job B's sweep runs while job A reads its copy: A's copy stays; a leftover of B's own
    job goes at once; another job's leftover goes once it is old enough to be over."""
    host = make_host(tmp_path, clock)
    a = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="ra", Owner="acme/a")
    crashed = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="rb0", Owner="acme/b")
    gone = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="rc", Owner="acme/c")
    host.run("Remove-HvbShadowCopy", ShadowId=[gone["shadows"][0]["id"]], RunId="rc")  # gone
    host.world.state["shadow_record"].append(gone["shadows"][0]["id"])
    host.world.save()
    swept = host.run("Clear-HvbLeftovers", KeepRunId="rb", Owner="acme/b", SkipCheckpoints=True)
    removed = [s["id"] for s in swept["shadow_copies"] if s["removed"]]
    assert removed == [crashed["shadows"][0]["id"]]
    exposed = a["paths"][0]["exposed"]
    assert any(host.local_path(exposed).rglob("*"))  # A still reads its copy
    clock.advance(timedelta(hours=25))
    later = host.run("Clear-HvbLeftovers", KeepRunId="rb2", Owner="acme/b", SkipCheckpoints=True)
    assert [s["id"] for s in later["shadow_copies"] if s["removed"]] == [a["shadows"][0]["id"]]
    assert host.run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_the_sweep_leaves_other_products_recovery_checkpoints(tmp_path: Path,
                                                              clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    vm = next(iter(host.world.state["vms"]))
    host._make_checkpoint(vm, "Veeam backup", "Recovery", clock.now() - timedelta(days=3))
    # Even one whose name happens to start with hvbackup's prefix: the type decides.
    host._make_checkpoint(vm, "hvbackup-other", "Recovery", clock.now() - timedelta(days=3))
    host.world.save()
    swept = host.run("Clear-HvbLeftovers", SkipShadowCopies=True)
    assert swept["checkpoints"] == []
    assert [cp["name"] for cp in host.world.state["vms"][vm]["checkpoints"]] == [
        "Veeam backup", "hvbackup-other"]


def test_a_folder_on_a_mount_point_volume_gets_that_volume_s_copy(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    host.roots = simroots.onboard(["D:\\s"], ["D:\\Partages", "D:\\Mounts\\Data"],
                                  [simroots.DEFAULT_RESTORE])  # the share root onboarded
    host.world.state["mount_points"] = ["D:\\Mounts\\Data\\"]
    (host.local_path("D:\\Mounts\\Data\\Compta") / "x").mkdir(parents=True)
    (host.local_path("D:\\Mounts\\Data\\Compta") / "x" / "f.txt").write_text("f")
    host.world.save()
    made = host.run("New-HvbShadowCopy", Path=["D:\\Partages", "D:\\Mounts\\Data\\Compta"],
                    RunId="r1")
    assert [s["volume"] for s in made["shadows"]] == ["D:\\", "D:\\Mounts\\Data\\"]
    assert made["paths"][1]["exposed"] == "\\\\HV01\\hvb-r1-2$\\Compta"
    assert (host.local_path(made["paths"][1]["exposed"]) / "x" / "f.txt").read_text() == "f"


def test_shares_change_from_day_to_day(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    host.run("Get-HvbInventory")
    live = host.local_path("D:\\Partages")
    before = {p.name for p in live.rglob("*") if p.is_file()}
    clock.advance(timedelta(days=3))
    host.run("Get-HvbInventory")
    after = {p.name for p in live.rglob("*") if p.is_file()}
    assert after - before, "new files every day"


def test_export_mode_and_staging_full(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    cp = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", Mode="export",
                  StagingPath="D:\\hvbackup-staging")
    assert cp["export_path"] == "D:\\hvbackup-staging\\r1"
    assert any(f["path"].endswith(".vmcx") for f in cp["files"])
    full = make_host(tmp_path / "full", clock, Fault("staging-full"))
    with pytest.raises(ScriptFailed, match=r"STAGING_FULL.*free space on the staging volume"):
        full.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", Mode="export",
                 StagingPath="D:\\hvbackup-staging")


def test_restore_vm_recreates_it_off(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    cp = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    restored = host.local_path("D:\\Restore\\ERP01.vhdx")
    restored.parent.mkdir(parents=True)
    restored.write_bytes(host.local_path(cp["disks"][0]["path"]).read_bytes())
    disks = json.dumps([{**cp["disks"][0], "chain": ["D:\\Restore\\ERP01.vhdx"]}])
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore", NewName="ERP01-restored",
                      ConfigurationJson=json.dumps(cp["configuration"]), DiskJson=disks)
    assert result["state"] == "Off"
    with pytest.raises(ScriptFailed, match="VM_EXISTS"):
        host.run("Restore-HvbVm", RestorePath="D:\\Restore", NewName="ERP01",
                 ConfigurationJson=json.dumps(cp["configuration"]), DiskJson=disks)


@pytest.mark.parametrize("script", ["New-HvbCheckpoint", "Remove-HvbCheckpoint",
                                    "Invoke-HvbSqlBackup", "New-HvbShadowCopy", "Restore-HvbVm",
                                    "Restore-HvbSqlDatabase", "Remove-HvbStaging"])
def test_dry_run_changes_nothing(tmp_path: Path, clock: FrozenClock, script: str) -> None:
    host = make_host(tmp_path, clock)
    host.run("Get-HvbInventory")
    host.run("New-HvbCheckpoint", VMName="DC01", RunId="keep")
    bak = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                   RunId="keep")["databases"][0]["file"]
    host.local_path("D:\\Restore").mkdir(parents=True)

    def snapshot() -> dict[str, str]:
        return {str(p): sha(p) for p in tmp_path.rglob("*") if p.is_file()
                and p.name != "state.json"} | {"state": (tmp_path / "state.json").read_text()}

    before = snapshot()
    params = {
        "New-HvbCheckpoint": {"VMName": "ERP01", "RunId": "r1"},
        "Remove-HvbCheckpoint": {"VMName": "DC01", "CheckpointName": "hvbackup-keep"},
        "Invoke-HvbSqlBackup": {"Instance": "SQL01\\COMPTA", "StagingPath": "D:\\s",
                                "RunId": "r1"},
        "New-HvbShadowCopy": {"Path": ["D:\\Partages"], "RunId": "r1"},
        "Restore-HvbVm": {"RestorePath": "D:\\Restore", "NewName": "X", "Mode": "import"},
        "Restore-HvbSqlDatabase": {"Instance": "SQL01\\COMPTA", "BackupFile": bak,
                                   "DatabaseName": "COMPTA"},
        "Remove-HvbStaging": {"StagingPath": "D:\\s", "RunId": "keep"},
    }[script]
    result = host.run(script, DryRun=True, **params)
    assert result["dry_run"] is True
    assert snapshot() == before
