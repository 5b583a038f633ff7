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
from orchestrator.errors import ScriptFailed, UsageError
from orchestrator.hosts import scripts, simroots
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
    # The host would authenticate to that server; database files written over system files.
    ("Restore-HvbSqlDatabase", {"Instance": "SQL01\\COMPTA", "DatabaseName": "COMPTA",
                                "BackupFile": "\\\\attacker\\share\\COMPTA.bak"}),
    ("Restore-HvbSqlDatabase", {"Instance": "SQL01\\COMPTA", "DatabaseName": "COMPTA",
                                "BackupFile": "D:\\Restore\\..\\SQL\\COMPTA.bak"}),
    ("Restore-HvbSqlDatabase", {"Instance": "SQL01\\COMPTA", "DatabaseName": "COMPTA",
                                "BackupFile": "D:\\Restore\\COMPTA.bak",
                                "DataPath": "C:\\Windows\\System32"}),
    ("Restore-HvbSqlDatabase", {"Instance": "SQL01\\COMPTA", "DatabaseName": "COMPTA",
                                "BackupFile": "D:\\hvbackup-staging\\r1\\COMPTA.bak",
                                "LogPath": "\\\\attacker\\logs"}),
    # Folders made, mounted and shared wherever the caller says.
    ("New-HvbShadowCopy", {"Path": ["D:\\Partages"], "RunId": "r1",
                           "LinkRoot": "C:\\Windows\\System32"}),
    ("Clear-HvbLeftovers", {"LinkRoot": "D:\\Partages"}),
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


GUID = "{0D4E5F6A-1B2C-4D3E-8F9A-0B1C2D3E4F5A}"


@pytest.mark.parametrize(("script", "params"), [
    # WQL injection: every shadow copy of the host would go.
    ("Remove-HvbShadowCopy", {"ShadowId": ["x' OR ID <> '"], "RunId": "r1"}),
    # Another run's shares, by a run id that is a pattern.
    ("Remove-HvbShadowCopy", {"ShadowId": [GUID], "RunId": "r1*"}),
    ("Clear-HvbLeftovers", {"ShadowId": ["x' OR ID <> '"]}),
    # -like "*-*": every user checkpoint merged away.
    ("Clear-HvbLeftovers", {"Prefix": "*"}),
    ("Clear-HvbLeftovers", {"Prefix": "hvb?ckup"}),
    ("Get-HvbInventory", {"Prefix": "*"}),
    ("New-HvbCheckpoint", {"VMName": "ERP01", "RunId": "r1", "Prefix": "hvb*"}),
    # Anyone's checkpoint.
    ("Remove-HvbCheckpoint", {"VMName": "ERP01", "CheckpointName": "Avant mise à jour"}),
    ("Remove-HvbCheckpoint", {"VMName": "ERP01", "CheckpointName": "hvbackup-r1 (copie)"}),
    # Out of the restore root through Join-Path $RestorePath $NewName.
    ("Restore-HvbVm", {"RestorePath": "D:\\Restore", "NewName": "..\\..\\Hyper-V\\ERP01"}),
    ("Restore-HvbVm", {"RestorePath": "D:\\Restore", "NewName": "a/b"}),
    ("Restore-HvbVm", {"RestorePath": "D:\\Restore", "NewName": ".."}),
    ("Restore-HvbVm", {"RestorePath": "D:\\Restore", "NewName": "x" * 101}),
])
def test_values_the_scripts_param_blocks_refuse_never_reach_the_host(
        tmp_path: Path, script: str, params: dict[str, object]) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")
    host._make_checkpoint("ERP01", "Avant mise à jour", "Standard",
                          datetime(2026, 11, 1, tzinfo=UTC))
    host.world.save()
    with pytest.raises(UsageError, match="refuses"):
        host.run(script, **params)
    vm = host.world.state["vms"]["ERP01"]
    assert [cp["name"] for cp in vm["checkpoints"]] == ["Avant mise à jour"]
    assert list(host.world.state["shadow_copies"]) == [made["shadows"][0]["id"]]


def test_what_hvbackup_names_still_passes_the_param_blocks() -> None:
    assert scripts.check_call("Remove-HvbCheckpoint", {
        "VMName": "ERP01", "CheckpointName": "hvbackup-20261123-2100 (crash-consistent)"})
    assert scripts.check_call("Remove-HvbShadowCopy", {"ShadowId": [GUID.lower()],
                                                      "RunId": "202611232100-566799"})
    assert scripts.check_call("Restore-HvbVm", {"RestorePath": "D:\\Restore",
                                                "NewName": "Serveur-Compta (restauré) 1.2"})
    assert scripts.check_call("Clear-HvbLeftovers", {"Prefix": "hvbackup"})


def test_only_recorded_shadow_copies_and_their_own_mount_folders_are_removed(
        tmp_path: Path) -> None:
    host = make_host(tmp_path)
    mine = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")["shadows"][0]
    other = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r2")["shadows"][0]
    # Another product's copy: on the host, not in shadow-copies.txt.
    record = host.world.state["shadow_record"]  # "<id>\t<run>\t<owner>..." lines
    record[:] = [line for line in record if line.split("\t")[0] != other["id"]]
    host.world.save()
    with pytest.raises(ScriptFailed, match="SHADOW_NOT_HVBACKUP"):
        host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"], other["id"]], RunId="r1")
    folder = host.local_path("D:\\Partages\\dossier0")
    for link in ("D:\\Partages\\dossier0", other["link"]):
        with pytest.raises(ScriptFailed, match="PATH_NOT_ALLOWED"):
            host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"]], RunId="r1", LinkPath=[link])
    assert folder.is_dir() and set(host.world.state["shadow_copies"]) == {mine["id"], other["id"]}
    swept = host.run("Clear-HvbLeftovers", ShadowId=[other["id"]], KeepRunId="r1")
    assert swept["shadow_copies"] == [] and other["id"] in host.world.state["shadow_copies"]
    removed = host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"]], RunId="r1",
                       LinkPath=[mine["link"].upper()])
    assert removed["shadow_copies"][0]["removed"]
    assert set(host.world.state["shadow_copies"]) == {other["id"]}


def test_the_mount_folders_root_is_hvbackup_s_own(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1",
                    LinkRoot="c:\\programdata\\HVBACKUP\\shadow\\")
    assert made["shadows"][0]["link"] == "C:\\ProgramData\\hvbackup\\shadow\\r1-1"


def test_the_sweep_compares_its_prefix_not_a_pattern(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    for name in ("hvbackup-old", "hvbackupX-user", "HVBACKUP-old2"):
        host._make_checkpoint("ERP01", name, "Standard", datetime(2026, 11, 1, tzinfo=UTC))
    host.world.save()
    swept = host.run("Clear-HvbLeftovers", SkipShadowCopies=True)
    assert sorted(cp["name"] for cp in swept["checkpoints"]) == ["HVBACKUP-old2", "hvbackup-old"]
    left = [cp["name"] for cp in host.world.state["vms"]["ERP01"]["checkpoints"]]
    assert left == ["hvbackupX-user"]


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


# Path parameters held to something narrower than a root, and the line that does it.
CHECKED_OTHERWISE = {
    ("New-HvbShadowCopy", "LinkRoot"): r"GetFullPath\(\$LinkRoot\)\S* -ne \$ownLinkRoot",
    ("Clear-HvbLeftovers", "LinkRoot"): r"GetFullPath\(\$LinkRoot\)\S* -ne \(Join-Path",
    ("Remove-HvbShadowCopy", "LinkPath"): r"\$mounts -contains \$full -or \$full -match \$ownMount",
}


def path_parameters() -> list[tuple[str, str]]:
    """Every (script, parameter) whose name says it is a path: -Path, or ending in Path, File
    or Root; read from the param() blocks, so a new script is held to the rule at once."""
    return [(name, param) for name in scripts.script_names()
            for param in scripts.load_script(name).parameters
            if re.fullmatch(r"\w*(Path|File|Root)", param)]


def test_every_script_that_takes_a_path_checks_it_against_the_roots() -> None:
    found = path_parameters()
    assert ("Restore-HvbSqlDatabase", "BackupFile") in found and len(found) >= 10
    helper = None
    for name, param in found:
        text = (POWERSHELL / f"{name}.ps1").read_text(encoding="utf-8")
        if (name, param) in CHECKED_OTHERWISE:
            assert re.search(CHECKED_OTHERWISE[name, param], text), f"{name} -{param}"
            continue
        # The parameter itself, or (-Path, a list) each of its items.
        checked = rf"Assert-HvbRoot \${param} '(staging|shares|restore)'"
        each = rf"foreach \(\$(\w+) in \${param}\) \{{\s*Assert-HvbRoot \$\1 '"
        assert re.search(checked, text) or re.search(each, text), f"{name} -{param}"
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
