"""The host onboarding script (powershell/onboarding): it parses, follows the house rules, has
Pester tests for idempotence, -DryRun and -Remove, and its JEA role capability exposes exactly
hvbackup's own scripts: every one the orchestrator calls, and nothing else."""

from __future__ import annotations

import re

import tree_sitter as ts
import tree_sitter_powershell as tsp

from orchestrator.hosts import scripts
from tests.conftest import REPO

ONBOARDING = REPO / "powershell" / "onboarding"
PARSER = ts.Parser(ts.Language(tsp.language()))


def _nodes(node: ts.Node, kind: str) -> list[ts.Node]:
    found = [node] if node.type == kind else []
    for child in node.children:
        found.extend(_nodes(child, kind))
    return found


def _visible_functions() -> list[str]:
    text = (ONBOARDING / "Hvbackup.psrc").read_text(encoding="utf-8")
    block = re.search(r"VisibleFunctions = @\((.*?)\)", text, re.S)
    assert block, "no VisibleFunctions in Hvbackup.psrc"
    return re.findall(r"'([^']+)'", block.group(1))


def _called_by_the_orchestrator() -> set[str]:
    called: set[str] = set()
    for path in (REPO / "orchestrator").rglob("*.py"):
        called |= set(re.findall(r"\.run\(\s*\"([A-Z][A-Za-z]+-Hvb[A-Za-z]+)\"",
                                 path.read_text(encoding="utf-8")))
    return called


def test_files_parse() -> None:
    for path in [ONBOARDING / "Initialize-HvbHost.ps1", ONBOARDING / "Hvbackup.psrc",
                 *(ONBOARDING / "tests").glob("*.ps1")]:
        tree = PARSER.parse(path.read_bytes())
        errors = [n.start_point[0] + 1 for n in _nodes(tree.root_node, "ERROR")]
        assert not tree.root_node.has_error, f"{path.name} has syntax errors near lines {errors}"


def test_house_rules() -> None:
    text = (ONBOARDING / "Initialize-HvbHost.ps1").read_text(encoding="utf-8")
    assert re.search(r"^\$ErrorActionPreference = 'Stop'$", text, re.M)
    assert text.rstrip().endswith("$result | ConvertTo-Json -Compress -Depth 8")
    assert "[switch]$DryRun" in text and "[switch]$Remove" in text
    assert ".SYNOPSIS" in text and ".DESCRIPTION" in text
    for literal in _nodes(PARSER.parse(text.encode()).root_node, "expandable_string_literal"):
        bad = re.findall(r"\$(?!env:|script:|global:|using:)([A-Za-z_]\w*):(?!:)",
                         literal.text.decode())
        assert not bad, f"use ${{{bad[0]}}}: in {literal.text.decode()[:80]}"
    # Least privilege: not an administrator, a NoLanguage endpoint, port 5986 for one address.
    assert "-SessionType RestrictedRemoteServer" in text and "-RunAsVirtualAccount" in text
    assert "-RemoteAddress $OrchestratorAddress" in text
    assert "Add-LocalGroupMember -Group $OperatorsGroup" in text
    assert "Administrators -Member" not in text


def test_role_capability_exposes_exactly_the_scripts() -> None:
    visible = _visible_functions()
    shipped = scripts.script_names()
    assert sorted(visible) == sorted(shipped), "Hvbackup.psrc and powershell/*.ps1 differ"
    called = _called_by_the_orchestrator()
    assert len(called) >= 8  # the scan found the calls (it can fail)
    assert called <= set(visible), f"called but not exposed: {called - set(visible)}"
    # The module the onboarding installs is built from exactly those files.
    text = (ONBOARDING / "Initialize-HvbHost.ps1").read_text(encoding="utf-8")
    pattern = re.search(r"-Filter '([^']+)'", text.split("function Install-HvbModule")[1])
    assert pattern is not None
    glob = pattern.group(1)
    assert sorted(p.stem for p in (REPO / "powershell").glob(glob)) == sorted(visible)


def test_pester_tests_cover_idempotence_dry_run_and_remove() -> None:
    text = (ONBOARDING / "tests" / "Initialize-HvbHost.Tests.ps1").read_text(encoding="utf-8")
    for case in ("idempotent", "DryRun", "Remove", "drifted"):
        assert case in text
