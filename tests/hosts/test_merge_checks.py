"""A checkpoint's removal says "merged" only once the .avhdx made when it was taken are gone,
waited for up to the same timeout, else false with the files still there: in
Remove-HvbCheckpoint.ps1 whatever the checkpoint's place in the tree, and in the sweep
(Clear-HvbLeftovers.ps1) too. No run here meets a real merge: the scripts are read; the
simulator shows the contract."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from orchestrator.clock import FrozenClock
from orchestrator.hosts import simroots
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.conftest import REPO

PS_DIR = REPO / "powershell"
ROOTS = simroots.onboard(["D:\\s"], ["D:\\Partages"], ["D:\\Restore"])
WATCH = ("$children = @(Get-VMSnapshot -VM $vm | Where-Object { $_.ParentSnapshotId -eq "
         "$CP.Id })")
DRIVES = ("$drives = if ($children.Count) { @($children | ForEach-Object { Get-VMHardDiskDrive "
          "-VMSnapshot $_ }) } else { @(Get-VMHardDiskDrive -VM $vm) }")


def _text(name: str) -> str:
    return (PS_DIR / f"{name}.ps1").read_text(encoding="utf-8")


def test_remove_checkpoint_watches_the_files_of_a_checkpoint_that_is_not_the_latest() -> None:
    # It watched nothing then, and said merged: true without looking.
    text = _text("Remove-HvbCheckpoint")
    assert WATCH.replace("$CP", "$checkpoint") in text and DRIVES in text
    assert "$watched = @($drives | Where-Object { $_.Path -like '*.avhdx' }" in text
    assert "else { @() }" not in text


def test_the_sweep_waits_for_the_merges_before_it_says_merged() -> None:
    text = _text("Clear-HvbLeftovers")
    assert WATCH.replace("$CP", "$cp") in text and DRIVES in text
    wait = text[text.index("$merging = "):text.index("# A record line")]
    assert "$deadline = (Get-Date).AddSeconds($TimeoutSeconds)" in wait
    assert "Start-Sleep" in wait
    assert "$entry.merged = $entry.remaining_files.Count -eq 0" in wait
    # The guess from the checkpoints left is gone.
    assert "($left.Count -gt 0)" not in text


def test_the_sweep_reports_a_stuck_merge_with_its_files(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    host = SimulatedHost("acme/hv01", tmp_path, WorldSpec(vms=["ERP01"], vm_disk_mb=1),
                         now=clock.now, today=lambda: clock.now().date(),
                         faults=(Fault("merge-stuck", "ERP01", on=(date(2026, 11, 23),)),),
                         sleep=lambda s: None, roots=ROOTS)
    made = host.run("New-HvbCheckpoint", VMName="ERP01", RunId="r1")
    assert made["ok"]
    swept = host.run("Clear-HvbLeftovers", KeepRunId="r2")
    [entry] = swept["checkpoints"]
    assert entry["removed"] and not entry["merged"]
    assert entry["remaining_files"] and all(f.endswith(".avhdx")
                                            for f in entry["remaining_files"])
