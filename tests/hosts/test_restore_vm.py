"""Restore-HvbVm brings back what the VM had (SCSI controllers beyond the first, Secure Boot
template, vTPM, static MAC addresses, VLANs, the switch asked for), or says in ``not_restored``
what it could not; checked on a simulated multi-controller VM, and statically on the script."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts.simulated import SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.conftest import REPO


def make_host(root: Path) -> SimulatedHost:
    clock = FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    host = SimulatedHost("acme/hv01", root, WorldSpec(vms=["APP01"], vm_disk_mb=1),
                         now=clock.now, today=lambda: clock.now().date())
    world = host.world
    vm = world.state["vms"]["APP01"]
    # A Linux guest with a data disk on a second SCSI controller, a vTPM, a static MAC on
    # VLAN 20 and a dynamic one on the LAN.
    data = "D:\\Hyper-V\\APP01\\Virtual Hard Disks\\APP01-data.vhdx"
    host.local_path(data).write_bytes(b"\0" * 4096)
    vm["disks"][0].update(controller_type="SCSI", controller_number=0, controller_location=0)
    vm["disks"].append({"path": data, "size_bytes": 4096, "controller_type": "SCSI",
                        "controller_number": 1, "controller_location": 3})
    vm.update(scsi_controllers=2, secure_boot="On",
              secure_boot_template="MicrosoftUEFICertificateAuthority", tpm_enabled=True)
    vm["network_adapters"] = [
        {"name": "Prod", "switch": "LAN", "mac": "00155D0A0B0C", "dynamic_mac": False,
         "vlan_id": 20},
        {"name": "Admin", "switch": "ADMIN", "mac": "00155D0D0E0F", "dynamic_mac": True,
         "vlan_id": 0},
    ]
    world.state["switches"] = ["LAN", "ADMIN", "ISOLATED"]
    world.save()
    return host


def restore_disks(host: SimulatedHost, made: dict[str, Any]) -> list[dict[str, Any]]:
    disks = []
    for disk in made["disks"]:
        restored = "D:\\Restore\\APP01\\" + disk["path"].rsplit("\\", 1)[-1]
        host.local_path(restored).parent.mkdir(parents=True, exist_ok=True)
        host.local_path(restored).write_bytes(host.local_path(disk["path"]).read_bytes())
        disks.append({**disk, "chain": [restored]})
    return disks


def test_recreate_brings_back_controllers_firmware_tpm_mac_and_vlan(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1")
    disks = restore_disks(host, made)
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-r",
                      ConfigurationJson=json.dumps(made["configuration"]),
                      DiskJson=json.dumps(disks))
    new, old = host.world.state["vms"]["APP01-r"], host.world.state["vms"]["APP01"]
    assert new["state"] == "Off" and new["id"] != old["id"]
    assert new["scsi_controllers"] == 2
    assert [(d["controller_number"], d["controller_location"]) for d in new["disks"]] == [
        (0, 0), (1, 3)]
    assert new["secure_boot_template"] == "MicrosoftUEFICertificateAuthority"
    assert new["tpm_enabled"] is True
    prod, admin = new["network_adapters"]
    assert (prod["switch"], prod["mac"], prod["dynamic_mac"], prod["vlan_id"]) == (
        "LAN", "00155D0A0B0C", False, 20)
    assert admin["switch"] == "ADMIN" and admin["dynamic_mac"] and admin["mac"] != old[
        "network_adapters"][1]["mac"]
    # What Hyper-V cannot give back, and the static MAC the original (still on this host)
    # has too, are said plainly.
    assert [m.split(":")[0] for m in result["not_restored"]] == [
        "vTPM", "network adapter 'Prod'"]


def test_switch_name_connects_every_adapter_and_a_missing_switch_is_said(
        tmp_path: Path) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1")
    disks = json.dumps(restore_disks(host, made))
    config = json.dumps(made["configuration"])
    host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-iso",
             ConfigurationJson=config, DiskJson=disks, SwitchName="ISOLATED")
    assert {n["switch"] for n in host.world.state["vms"]["APP01-iso"]["network_adapters"]} == {
        "ISOLATED"}
    with pytest.raises(ScriptFailed, match="SWITCH_NOT_FOUND"):
        host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-x",
                 ConfigurationJson=config, DiskJson=disks, SwitchName="NOPE")
    host.world.state["switches"] = ["LAN"]
    host.world.save()
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-y",
                      ConfigurationJson=config, DiskJson=disks)
    assert any("'Admin': no switch 'ADMIN'" in m for m in result["not_restored"])


def test_an_old_record_says_what_it_lacked(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1")
    disks = json.dumps(restore_disks(host, made))
    old = {k: v for k, v in made["configuration"].items()
           if k not in ("secure_boot_template", "tpm_enabled", "scsi_controllers")}
    old["network_adapters"] = [{k: v for k, v in n.items() if k != "dynamic_mac"}
                               for n in old["network_adapters"]]
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-old",
                      ConfigurationJson=json.dumps(old), DiskJson=disks)
    said = " ".join(result["not_restored"])
    assert "Secure Boot template" in said and "vTPM: not recorded" in said
    assert "00155D0A0B0C not known to be static" in said
    # The second controller comes from the disks themselves.
    assert host.world.state["vms"]["APP01-old"]["scsi_controllers"] == 2


def test_import_uses_the_switch_asked_for(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1", Mode="export",
                    StagingPath="D:\\hvbackup-staging")
    target = host.local_path("D:\\Restore\\APP01-export")
    target.parent.mkdir(parents=True, exist_ok=True)
    host.local_path(made["export_path"]).rename(target)
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01-export",
                      NewName="APP01-imp", Mode="import", SwitchName="ISOLATED")
    assert result["mode"] == "import"
    assert [m.split(":")[0] for m in result["not_restored"]] == [
        "vTPM", "network adapter 'Prod'"]
    assert {n["switch"] for n in host.world.state["vms"]["APP01-imp"]["network_adapters"]} == {
        "ISOLATED"}


def test_the_script_does_what_the_simulator_checks() -> None:
    text = (REPO / "powershell" / "Restore-HvbVm.ps1").read_text(encoding="utf-8")
    for needed in ("Add-VMScsiController -VM $vm", "-SecureBootTemplate $template",
                   "Set-VMKeyProtector -VM $vm -NewLocalKeyProtector", "Enable-VMTPM -VM $vm",
                   "$add.StaticMacAddress = $nic.mac", "Set-VMNetworkAdapterVlan",
                   "Compare-VM -Path", "Import-VM -CompatibilityReport $report",
                   "Connect-VMNetworkAdapter -SwitchName $SwitchName",
                   "not_restored = @($notRestored)"):
        assert needed in text, needed
    assert len(re.findall(r"not_restored = @\(\$notRestored\)", text)) == 2  # both modes
    recorded = (REPO / "powershell" / "New-HvbCheckpoint.ps1").read_text(encoding="utf-8")
    for key in ("secure_boot_template", "tpm_enabled", "scsi_controllers", "dynamic_mac"):
        assert f"{key} " in recorded or f"{key} =" in recorded, key


def _rich_vm(host: SimulatedHost) -> None:
    """APP01 with what a recreate used to lose: a trunk port and a private (isolated) VLAN,
    two DVD drives (one ISO on this host, one gone), a boot order starting from the network,
    a loader entry, and a VM that starts with the host."""
    vm = host.world.state["vms"]["APP01"]
    iso = "D:\\ISO\\install.iso"
    host.local_path(iso).parent.mkdir(parents=True, exist_ok=True)
    host.local_path(iso).write_bytes(b"CD001")
    vm["network_adapters"][0].update(vlan_mode="Trunk", vlan_id=0, native_vlan_id=10,
                                     allowed_vlan_ids="10,20-30")
    vm["network_adapters"][1].update(vlan_mode="Private", private_vlan_mode="Isolated",
                                     primary_vlan_id=100, secondary_vlan_id=201)
    vm["dvd_drives"] = [
        {"controller_type": "SCSI", "controller_number": 0, "controller_location": 1,
         "path": iso},
        {"controller_type": "SCSI", "controller_number": 1, "controller_location": 0,
         "path": "D:\\ISO\\drivers-2019.iso"}]
    vm["boot_order"] = [
        {"kind": "network", "adapter": "Admin", "description": "EFI Network"},
        {"kind": "dvd", "controller_type": "SCSI", "controller_number": 0,
         "controller_location": 1, "description": "EFI SCSI Device"},
        {"kind": "file", "path": "\\EFI\\Microsoft\\Boot\\bootmgfw.efi",
         "description": "Windows Boot Manager"},
        {"kind": "disk", "controller_type": "SCSI", "controller_number": 1,
         "controller_location": 3, "description": "EFI SCSI Device"}]
    vm.update(automatic_start_action="Start", automatic_start_delay=120,
              automatic_stop_action="ShutDown")
    host.world.save()


def test_recreate_brings_back_vlan_modes_dvd_drives_boot_order_and_start_action(
        tmp_path: Path) -> None:
    host = make_host(tmp_path)
    _rich_vm(host)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1")
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01", NewName="APP01-r",
                      ConfigurationJson=json.dumps(made["configuration"]),
                      DiskJson=json.dumps(restore_disks(host, made)))
    new = host.world.state["vms"]["APP01-r"]
    prod, admin = new["network_adapters"]
    assert (prod["vlan_mode"], prod["native_vlan_id"], prod["allowed_vlan_ids"]) == (
        "Trunk", 10, "10,20-30")
    assert (admin["vlan_mode"], admin["private_vlan_mode"], admin["primary_vlan_id"],
            admin["secondary_vlan_id"]) == ("Private", "Isolated", 100, 201)
    assert new["dvd_drives"] == [
        {"controller_type": "SCSI", "controller_number": 0, "controller_location": 1,
         "path": "D:\\ISO\\install.iso"},
        {"controller_type": "SCSI", "controller_number": 1, "controller_location": 0,
         "path": ""}]
    # The recorded order first, by device; the new VM's other entries after it.
    assert [(e["kind"], e.get("adapter") or e.get("controller_location")) for e in
            new["boot_order"]][:3] == [("network", "Admin"), ("dvd", 1), ("disk", 3)]
    assert (new["automatic_start_action"], new["automatic_start_delay"],
            new["automatic_stop_action"]) == ("Nothing", 120, "ShutDown")
    said = result["not_restored"]
    assert any(m.startswith("DVD drive SCSI 1:0: the ISO D:\\ISO\\drivers-2019.iso is not on")
               for m in said), said
    assert any(m.startswith("boot entry 'Windows Boot Manager'") for m in said), said
    assert any(m.startswith("automatic start action: it was Start") for m in said), said
    # The static MAC restored is the original's, which is still on this host: said.
    assert any(m.startswith("network adapter 'Prod': its static MAC address 00155D0A0B0C is "
                            "also that of VM APP01") for m in said), said
    assert not any("'Admin': its static MAC" in m for m in said)  # a new dynamic one


def test_import_says_a_duplicate_mac_and_stops_an_automatic_start(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    _rich_vm(host)
    made = host.run("New-HvbCheckpoint", VMName="APP01", RunId="r1", Mode="export",
                    StagingPath="D:\\hvbackup-staging")
    target = host.local_path("D:\\Restore\\APP01-export")
    target.parent.mkdir(parents=True, exist_ok=True)
    host.local_path(made["export_path"]).rename(target)
    result = host.run("Restore-HvbVm", RestorePath="D:\\Restore\\APP01-export",
                      NewName="APP01-imp", Mode="import")
    new = host.world.state["vms"]["APP01-imp"]
    assert new["automatic_start_action"] == "Nothing"
    assert new["network_adapters"][0]["vlan_mode"] == "Trunk"  # Import-VM keeps the ports
    said = " ".join(result["not_restored"])
    assert "its static MAC address 00155D0A0B0C is also that of VM APP01" in said
    assert "automatic start action: it was Start" in said


def test_the_script_restores_what_the_simulator_restores() -> None:
    text = (REPO / "powershell" / "Restore-HvbVm.ps1").read_text(encoding="utf-8")
    for needed in ("-Trunk -AllowedVlanIdList", "-Isolated -PrimaryVlanId", "-Community",
                   "-Promiscuous -PrimaryVlanId", "Add-VMDvdDrive @drive",
                   "Set-VMFirmware -VM $vm -BootOrder", "Set-VMBios -VM $vm -StartupOrder",
                   "-AutomaticStartAction Nothing", "Add-HvbDuplicateMac $vm"):
        assert needed in text, needed
    assert text.count("Add-HvbDuplicateMac $vm") == 2  # both modes
    recorded = (REPO / "powershell" / "New-HvbCheckpoint.ps1").read_text(encoding="utf-8")
    for key in ("vlan_mode", "allowed_vlan_ids", "private_vlan_mode", "dvd_drives",
                "boot_order", "automatic_start_action"):
        assert f"{key} " in recorded or f"{key} =" in recorded, key
