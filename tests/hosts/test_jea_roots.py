"""JEA as least privilege: the endpoint's virtual account is a local administrator, so every
path a script deletes, snapshots or re-parents must lie inside the roots recorded on the host
at onboarding (roots.json), never a root the caller chooses. The simulator refuses what the
scripts refuse (Assert-HvbRoot), with the same codes; the onboarding names built-in groups by
SID and puts the host's IP addresses in its certificate."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts import simroots
from orchestrator.hosts.simulated import SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.conftest import REPO

POWERSHELL = REPO / "powershell"


def make_host(root: Path, *, onboarded: bool = True) -> SimulatedHost:
    clock = FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    spec = WorldSpec(vms=["ERP01"], sql={"SQL01\\COMPTA": []}, shares=["D:\\Partages"],
                     vm_disk_mb=1, share_files=5)
    return SimulatedHost("acme/hv01", root, spec, now=clock.now,
                         today=lambda: clock.now().date(), onboarded=onboarded)


@pytest.mark.parametrize(("script", "params"), [
    # The example: C:\Windows would be deleted.
    ("Remove-HvbStaging", {"StagingPath": "C:\\", "RunId": "Windows"}),
    ("Remove-HvbStaging", {"StagingPath": "D:\\hvbackup-staging\\..\\Hyper-V", "RunId": "ERP01"}),
    ("Remove-HvbStaging", {"StagingPath": "\\\\attacker\\share", "RunId": "r1"}),
    # Registry hives (C:\Windows\System32\config) through a shadow copy of C:.
    ("New-HvbShadowCopy", {"Path": ["C:\\"], "RunId": "r1"}),
    ("New-HvbShadowCopy", {"Path": ["D:\\Partages", "C:\\Windows\\System32\\config"],
                           "RunId": "r1"}),
    # A dump or an export sent to a remote share, or anywhere on the host.
    ("Invoke-HvbSqlBackup", {"Instance": "SQL01\\COMPTA", "StagingPath": "\\\\evil\\drop",
                             "RunId": "r1"}),
    ("New-HvbCheckpoint", {"VMName": "ERP01", "RunId": "r1", "Mode": "export",
                           "StagingPath": "C:\\Users\\Public"}),
    # Set-VHD -ParentPath on the production disks.
    ("Restore-HvbVm", {"RestorePath": "D:\\Hyper-V\\ERP01", "NewName": "X"}),
])
def test_paths_outside_the_onboarded_roots_are_refused(tmp_path: Path, script: str,
                                                       params: dict[str, object]) -> None:
    host = make_host(tmp_path)
    host.run("Get-HvbInventory")
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "state.json")
    with pytest.raises(ScriptFailed, match="PATH_NOT_ALLOWED") as caught:
        host.run(script, **params)
    assert caught.value.permanent
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "state.json") == before


def test_restore_disk_files_must_lie_in_a_restore_root(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    host.local_path("D:\\Restore").mkdir(parents=True)
    disks = ('[{"controller_type": "SCSI", "controller_number": 0, "controller_location": 0, '
             '"chain": ["D:\\\\Hyper-V\\\\ERP01\\\\Virtual Hard Disks\\\\ERP01.vhdx"]}]')
    with pytest.raises(ScriptFailed, match="PATH_NOT_ALLOWED"):
        host.run("Restore-HvbVm", RestorePath="D:\\Restore", NewName="X",
                 ConfigurationJson='{"generation": 2}', DiskJson=disks)


def test_the_roots_themselves_are_accepted(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    assert host.run("Remove-HvbStaging", StagingPath="d:\\HVBACKUP-staging\\",
                    RunId="r1")["path"] == "D:\\HVBACKUP-staging\\r1"
    assert host.run("New-HvbShadowCopy", Path=["D:\\Partages\\dossier0"], RunId="r1")["ok"]


def test_a_host_never_onboarded_refuses_every_path(tmp_path: Path) -> None:
    host = make_host(tmp_path, onboarded=False)
    with pytest.raises(ScriptFailed, match=r"ROOTS_NOT_CONFIGURED.*Initialize-HvbHost"):
        host.run("Remove-HvbStaging", StagingPath="D:\\hvbackup-staging", RunId="r1")


@pytest.mark.parametrize(("staging", "shares", "restore"), [
    (["D:\\"], [], []),                      # Remove-HvbStaging -RunId would reach any folder
    ([], ["C:\\"], []),                      # the system volume: hives, SAM
    ([], ["C:\\Windows\\System32"], []),
    (["C:\\ProgramData"], [], []),           # holds roots.json itself
    (["\\\\nas\\staging"], [], []),          # a remote share
    ([], [], ["Restore"]),                   # relative
])
def test_the_onboarding_refuses_dangerous_roots(staging: list[str], shares: list[str],
                                                restore: list[str]) -> None:
    with pytest.raises(ValueError):
        simroots.onboard(staging, shares, restore)
    # A data volume may be a share root (a files job of all of D:).
    assert simroots.onboard([], ["D:\\"], []).shares == ("D:",)


def test_every_script_that_takes_a_path_checks_it_against_the_roots() -> None:
    kinds = {"Remove-HvbStaging": "staging", "Invoke-HvbSqlBackup": "staging",
             "New-HvbCheckpoint": "staging", "New-HvbShadowCopy": "shares",
             "Restore-HvbVm": "restore"}
    helper = None
    for name, kind in kinds.items():
        text = (POWERSHELL / f"{name}.ps1").read_text(encoding="utf-8")
        assert re.search(rf"Assert-HvbRoot \$\w+ '{kind}'", text), name
        body = text[text.index("function Assert-HvbRoot"):].split("\n}\n")[0]
        assert helper in (None, body), f"{name}: Assert-HvbRoot differs from the others"
        helper = body
    assert helper is not None
    assert "roots.json" in helper and "'ROOTS_NOT_CONFIGURED'" in helper
    assert "'PATH_NOT_ALLOWED'" in helper and "GetFullPath" in helper
    assert "^[A-Za-z]:\\\\" in helper  # local paths only: no \\server\share, no \\?\


def test_onboarding_records_the_roots_names_groups_by_sid_and_certifies_addresses() -> None:
    text = (POWERSHELL / "onboarding" / "Initialize-HvbHost.ps1").read_text(encoding="utf-8")
    # Defect 9: 'Administrators' is 'Administrateurs' on French Windows.
    assert "'Administrators'" not in text and "'S-1-5-32-544'" in text
    assert "-RunAsVirtualAccountGroups @((Get-HvbGroupName $AdministratorsSid), $SqlGroup)" in text
    # Defect 12: an address needs an IPAddress entry in the certificate's SAN.
    assert "IPAddress=$_" in text and "2.5.29.17={text}" in text
    assert "-DnsName $names" not in text
    # Defect 14: the roots, written once by the onboarding, in a folder only admins can write.
    for param in ("StagingRoot", "ShareRoot", "RestoreRoot"):
        assert f"[string[]]${param}" in text
    assert "roots.json" in text and "SetAccessRuleProtection($true, $false)" in text
