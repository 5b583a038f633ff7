"""The record of shadow copies, %ProgramData%\\hvbackup\\shadow-copies.txt: one tab-separated
line per copy ("<id or pending>\\t<run>\\t<owner>\\t<created>\\t<volume>\\t<mount>\\t<share>"),
written by New-HvbShadowCopy.ps1 and struck by Remove-HvbShadowCopy.ps1 and
Clear-HvbLeftovers.ps1 while other jobs of the host may do the same. No run here can race two
scripts, so the lock is checked on the scripts' syntax tree; the format, on the simulator that
keeps the same lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import tree_sitter as ts
import tree_sitter_powershell as tsp

from orchestrator.clock import FrozenClock
from orchestrator.hosts import simroots
from orchestrator.hosts.simulated import SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.conftest import REPO

PS_DIR = REPO / "powershell"
PARSER = ts.Parser(ts.Language(tsp.language()))
MUTEX = "Global\\hvbackup-shadow-record"
FILE_COMMANDS = {"get-content", "set-content", "add-content", "out-file", "clear-content"}
RECORD_SCRIPTS = sorted(p.stem for p in PS_DIR.glob("*.ps1")
                        if "shadow-copies.txt" in p.read_text(encoding="utf-8"))


def _nodes(node: ts.Node, kind: str) -> list[ts.Node]:
    found = [node] if node.type == kind else []
    for child in node.children:
        found.extend(_nodes(child, kind))
    return found


def _command_name(command: ts.Node) -> str:
    head = next((c for c in command.children if c.type == "command_name"), None)
    return head.text.decode().lower() if head else ""


def _inside_the_lock(node: ts.Node) -> bool:
    """Whether ``node`` is in a script block given to Use-HvbShadowRecord."""
    at: ts.Node | None = node
    while at is not None:
        if at.type == "script_block_expression":
            owner = at.parent
            while owner is not None and owner.type != "command":
                owner = owner.parent
            if owner is not None and _command_name(owner) == "use-hvbshadowrecord":
                return True
        at = at.parent
    return False


def _record_accesses(source: bytes) -> list[tuple[int, str, bool]]:
    """(line, command, inside the lock) for each file command on $RecordFile."""
    out = []
    for command in _nodes(PARSER.parse(source).root_node, "command"):
        name = _command_name(command)
        if name in FILE_COMMANDS and "$recordfile" in command.text.decode().lower():
            out.append((command.start_point[0] + 1, name, _inside_the_lock(command)))
    return out


def test_four_scripts_touch_the_record() -> None:
    assert RECORD_SCRIPTS == ["Clear-HvbLeftovers", "Get-HvbInventory", "New-HvbShadowCopy",
                              "Remove-HvbShadowCopy"]


@pytest.mark.parametrize("name", RECORD_SCRIPTS)
def test_every_read_and_write_of_the_record_holds_the_host_mutex(name: str) -> None:
    source = (PS_DIR / f"{name}.ps1").read_bytes()
    accesses = _record_accesses(source)
    assert accesses, "the scan found the record's reads and writes (it can fail)"
    assert [a for a in accesses if not a[2]] == [], "outside Use-HvbShadowRecord"
    text = source.decode()
    lock = text[text.index("function Use-HvbShadowRecord"):]
    lock = lock[:lock.index("\n}\n")]
    # A named system mutex, waited for with a timeout, released, an abandoned one taken over,
    # and a code the technician's page explains when it stays held.
    assert f"System.Threading.Mutex($false, '{MUTEX}')" in lock
    assert "WaitOne([TimeSpan]::FromSeconds($RecordLockSeconds))" in lock
    assert "ReleaseMutex()" in lock and "AbandonedMutexException" in lock
    assert "'SHADOW_RECORD_BUSY'" in lock


def test_the_scan_catches_a_write_outside_the_lock() -> None:
    source = b"""
Use-HvbShadowRecord { Add-Content -Path $RecordFile -Value 'a' }
Set-Content -Path $RecordFile -Value @()
"""
    assert [(line, inside) for line, _, inside in _record_accesses(source)] == [
        (2, True), (3, False)]


def test_the_inventory_matches_the_first_field_of_a_record_line() -> None:
    # Get-HvbInventory.ps1 compared whole lines with the copy's ID: none ever matched.
    text = (PS_DIR / "Get-HvbInventory.ps1").read_text(encoding="utf-8")
    start = text.index("$recorded = ")
    block = text[start:text.index("$leftShadows", start)]
    assert 'ForEach-Object { @($_ -split "`t")[0] }' in block
    assert "Where-Object { $_ -ne 'pending' }" in block


ROOTS = simroots.onboard(["D:\\s"], ["D:\\Partages"], ["D:\\Restore"])


def test_a_leftover_copy_is_listed_from_its_tab_separated_line_and_struck_alone(
        tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    host = SimulatedHost("acme/hv01", tmp_path, WorldSpec(shares=["D:\\Partages"],
                                                          share_files=5),
                         now=clock.now, today=lambda: clock.now().date(),
                         sleep=lambda s: None, roots=ROOTS)
    crashed = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1", Owner="acme/f")
    other = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r2", Owner="acme/g")
    sid, kept = crashed["shadows"][0]["id"], other["shadows"][0]["id"]
    assert host.world.state["shadow_record"][0] == "\t".join(
        (sid, "r1", "acme/f", "2026-11-23T21:00:00Z", "D:\\",
         "C:\\ProgramData\\hvbackup\\shadow\\r1-1", "hvb-r1-1$"))
    left = host.run("Get-HvbInventory")["leftovers"]["shadow_copies"]
    assert sorted(s["id"] for s in left) == sorted([sid, kept])
    swept = host.run("Clear-HvbLeftovers", KeepRunId="r3", Owner="acme/f", SkipCheckpoints=True)
    assert [s["id"] for s in swept["shadow_copies"] if s["removed"]] == [sid]
    assert [line.split("\t")[0] for line in host.world.state["shadow_record"]] == [kept]
    host.run("Remove-HvbShadowCopy", ShadowId=[kept], RunId="r2")
    assert host.world.state["shadow_record"] == []
    assert host.run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []
