"""powershell/ and the simulator keep one contract: every script parses, follows the rules a
technician relies on, takes the parameters the simulator accepts, and both sides' results
validate against the same JSON Schemas."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import jsonschema
import pytest
import tree_sitter as ts
import tree_sitter_powershell as tsp

from orchestrator.hosts import scripts
from orchestrator.hosts.simulated import SimulatedHost
from tests.conftest import REPO

PS_DIR = REPO / "powershell"
SCRIPTS = scripts.script_names()
PARSER = ts.Parser(ts.Language(tsp.language()))
VSS_ID = "5CED1297-4598-4915-A5FC-AD21BB4D02A4"


def _tree(name: str) -> ts.Tree:
    return PARSER.parse((PS_DIR / f"{name}.ps1").read_bytes())


def _nodes(node: ts.Node, kind: str) -> list[ts.Node]:
    found = [node] if node.type == kind else []
    for child in node.children:
        found.extend(_nodes(child, kind))
    return found


def test_the_expected_scripts_are_shipped() -> None:
    assert set(SCRIPTS) >= {
        "Get-HvbInventory", "New-HvbCheckpoint", "Remove-HvbCheckpoint", "Clear-HvbLeftovers",
        "Invoke-HvbSqlBackup", "Remove-HvbStaging", "New-HvbShadowCopy", "Remove-HvbShadowCopy",
        "Restore-HvbVm", "Restore-HvbSqlDatabase",
    }
    schemas = {p.name.removesuffix(".schema.json") for p in (PS_DIR / "schemas").glob("*.json")}
    assert schemas == set(SCRIPTS) | {"_error"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_parses_without_error(name: str) -> None:
    tree = _tree(name)
    errors = [n.start_point[0] + 1 for n in _nodes(tree.root_node, "ERROR")]
    assert not tree.root_node.has_error, f"{name}.ps1 has syntax errors near lines {errors}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_follows_the_house_rules(name: str) -> None:
    text = (PS_DIR / f"{name}.ps1").read_text()
    assert re.search(r"^\$ErrorActionPreference = 'Stop'$", text, re.M), "needs Stop"
    assert text.rstrip().endswith("| ConvertTo-Json -Compress -Depth 8"), "one JSON result, last"
    assert text.count("ConvertTo-Json -Compress -Depth 8") == 1
    assert ".SYNOPSIS" in text and ".DESCRIPTION" in text, "a technician must read what it does"
    if name != "Get-HvbInventory":
        assert "DryRun" in scripts.load_script(name).parameters, "changes things: needs -DryRun"
    # Localized strings must never be matched: statuses and names differ by host language.
    for banned in ("Operating normally", "PrimaryStatusDescription", "-Name VSS",
                   "'Backup (volume shadow copy)'", "StatusDescriptions"):
        assert banned not in text
    # "$name:" inside a double-quoted string is read as a drive-qualified variable and breaks.
    for literal in _nodes(_tree(name).root_node, "expandable_string_literal"):
        bad = re.findall(r"\$(?!env:|script:|global:|using:)([A-Za-z_]\w*):(?!:)",
                         literal.text.decode())
        assert not bad, f"{name}.ps1: use ${{{bad[0]}}}: in {literal.text.decode()[:80]}"


def test_inventory_matches_the_vss_service_by_id() -> None:
    text = (PS_DIR / "Get-HvbInventory.ps1").read_text()
    assert VSS_ID in text


def _tree_sitter_parameters(name: str) -> list[str]:
    block = _nodes(_tree(name).root_node, "param_block")
    assert block, f"{name}.ps1 has no param() block"
    return [v.text.decode()[1:] for p in _nodes(block[0], "script_parameter")
            for v in p.children if v.type == "variable"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_parameters_agree_between_script_adapter_and_simulator(name: str) -> None:
    from_tree = _tree_sitter_parameters(name)
    contract = scripts.load_script(name).parameters
    assert list(contract) == from_tree, "the runtime parser reads the param() block wrongly"
    method = getattr(SimulatedHost, "script_" + name.replace("-", "_"))
    signature = inspect.signature(method)
    sim = {p.name: p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert set(sim) == set(contract), f"simulator and {name}.ps1 disagree on parameter names"
    for param in contract.values():
        has_default = sim[param.name].default is not inspect.Parameter.empty
        assert has_default != param.mandatory, f"{param.name}: mandatory in one, not the other"


@pytest.mark.parametrize("name", SCRIPTS)
def test_schemas_are_valid_json_schemas(name: str) -> None:
    schema = json.loads((PS_DIR / "schemas" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_results_that_break_the_contract_are_refused() -> None:
    from orchestrator.errors import ScriptFailed, ScriptOutputInvalid

    with pytest.raises(ScriptOutputInvalid, match="did not return JSON"):
        scripts.interpret_result("Remove-HvbStaging", "host x", "WARNING: something")
    with pytest.raises(ScriptOutputInvalid, match="breaks its contract at bytes_freed"):
        scripts.interpret_result("Remove-HvbStaging", "host x", json.dumps(
            {"ok": True, "dry_run": False, "path": "D:\\s\\r", "removed": True,
             "bytes_freed": "many"}))
    with pytest.raises(ScriptFailed, match=r"GUEST_VSS_FAILED.*integration service") as info:
        scripts.interpret_result("New-HvbCheckpoint", "host x", json.dumps(
            {"ok": False, "error": {"code": "GUEST_VSS_FAILED", "message": "VSS said no"}}))
    # A guest's VSS writers may be busy or in a retryable state: the job retries (one policy:
    # RETRYABLE_CODES), unless it may fall back to a crash-consistent checkpoint instead.
    assert info.value.script_code == "GUEST_VSS_FAILED" and not info.value.permanent


def test_calls_are_checked_before_reaching_a_host() -> None:
    from orchestrator.errors import UsageError

    with pytest.raises(UsageError, match="has no parameter VmName"):
        scripts.check_call("New-HvbCheckpoint", {"VmName": "x", "RunId": "r"})
    with pytest.raises(UsageError, match="needs RunId"):
        scripts.check_call("New-HvbCheckpoint", {"VMName": "x"})
    sent = scripts.check_call("New-HvbCheckpoint", {"VMName": "x", "RunId": "r",
                                                    "DryRun": False, "AllowCrashConsistent": True})
    assert sent == {"VMName": "x", "RunId": "r", "AllowCrashConsistent": True}


def test_pester_tests_cover_every_script() -> None:
    tested = {p.name.removesuffix(".Tests.ps1") for p in (PS_DIR / "tests").glob("*.Tests.ps1")}
    assert tested == set(SCRIPTS)
    for path in (PS_DIR / "tests").glob("*.Tests.ps1"):
        assert not PARSER.parse(path.read_bytes()).root_node.has_error, path.name


def test_docs_say_how_to_run_the_pester_tests() -> None:
    assert "Invoke-Pester" in Path(REPO / "docs" / "host-scripts.md").read_text()
