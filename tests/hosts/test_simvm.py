"""The simulator's VMs follow Hyper-V's documented behaviour where the scripts once did not:
no writable checkpoint notes, checkpoint failures that are not guest VSS, pass-through disks,
names with wildcard characters, exports that need the whole chain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import WorldSpec


def make_host(root: Path, clock: FrozenClock, *faults: Fault, vms: list[str] | None = None,
              passthrough: list[str] | None = None) -> SimulatedHost:
    spec = WorldSpec(vms=vms or ["ERP01", "ERP02"], vm_disk_mb=4,
                     passthrough_vms=passthrough or [])
    return SimulatedHost("acme/hv01", root, spec, now=clock.now,
                         today=lambda: clock.now().date(), faults=faults, sleep=lambda s: None)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))


def test_crash_consistency_is_in_the_checkpoint_name(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("guest-vss-failure", "ERP01"))
    made = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", AllowCrashConsistent=True)
    assert made["consistency"] == "crash"
    assert made["checkpoint_name"] == "hvbackup-r1 (crash-consistent)"
    again = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", AllowCrashConsistent=True)
    assert again["reused"] and again["consistency"] == "crash"
    removed = host.run("Remove-HvbCheckpoint", VMName="ERP01",
                       CheckpointName=made["checkpoint_name"])
    assert removed["removed"] and removed["merged"]


def test_a_checkpoint_failure_that_is_not_guest_vss(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, Fault("checkpoint-failure", "ERP01"))
    with pytest.raises(ScriptFailed) as info:
        host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", AllowCrashConsistent=True)
    assert info.value.script_code == "CHECKPOINT_FAILED" and info.value.permanent
    assert "vssadmin" not in str(info.value)  # not the guest VSS hint


def test_pass_through_disks_are_listed_not_read(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, passthrough=["ERP01"])
    inv = host.run("Get-HvbInventory", SkipSql=True)
    erp = next(v for v in inv["vms"] if v["name"] == "ERP01")
    assert erp["passthrough_disks"] == ["SCSI 0:1 Disk 2 30.00 GB Bus 0 Lun 1 Target 0"]
    assert all(d["path"].endswith(".vhdx") for d in erp["disks"])
    made = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    assert len(made["disks"]) == 1 and len(made["passthrough_disks"]) == 1


@pytest.mark.parametrize("name", ["SRV[PROD]", "ERP*"])
def test_names_with_wildcard_characters_are_exact(tmp_path: Path, clock: FrozenClock,
                                                  name: str) -> None:
    host = make_host(tmp_path, clock, vms=["SRV[PROD]", "ERP01", "ERP02"])
    if name == "ERP*":
        with pytest.raises(ScriptFailed, match="VM_NOT_FOUND"):
            host.run("New-HvbCheckpoint", VMName=name, RunId="r1")
        return
    made = host.run("New-HvbCheckpoint", VMName=name, RunId="r1")
    assert made["vm"] == name


def test_export_to_a_share_is_refused(tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    # A share is never an onboarded root: refused before anything is written.
    with pytest.raises(ScriptFailed, match="PATH_NOT_ALLOWED"):
        host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1", Mode="export",
                 StagingPath="\\\\nas\\staging")
