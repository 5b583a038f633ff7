"""Rules a real Hyper-V host enforces on the scripts of powershell/ and that no run here can
show: each is read from the scripts' syntax tree (tree-sitter) and checked against what
Microsoft documents. A script that breaks one would fail the first time it meets Windows."""

from __future__ import annotations

import re

import pytest
import tree_sitter as ts
import tree_sitter_powershell as tsp

from orchestrator.hosts import scripts
from tests.conftest import REPO

PS_DIR = REPO / "powershell"
SCRIPTS = scripts.script_names()
PARSER = ts.Parser(ts.Language(tsp.language()))

# Every JEA session replaces these cmdlets with restricted proxies, also inside the functions
# of a module the role capability makes visible: only -InputObject and -Property (with these
# values) bind; anything else needs the module-qualified name.
# PowerShell/PowerShell src/System.Management.Automation/engine/CommandMetadata.cs
# (GetRestrictedRemotingCommands); PowerShell-Docs .../jea/role-capabilities.md.
JEA_PROXIES = {"get-command", "get-formatdata", "select-object", "get-help", "measure-object",
               "exit-pssession", "out-default"}
PROXY_PROPERTIES = {"modulename", "namespace", "outputtype", "count", "helpuri", "name",
                    "commandtype", "resolvedcommandname", "defaultparameterset",
                    "cmdletbinding", "parameters"}
HYPERV_NOUN = re.compile(r"^[A-Za-z]+-(VM|VHD)", re.I)


def _documented_hyperv_cmdlets() -> set[str]:
    lines = (REPO / "tests" / "hosts" / "data" / "hyperv-cmdlets.txt").read_text().splitlines()
    return {line.strip().lower() for line in lines if line.strip() and not line.startswith("#")}


def _nodes(node: ts.Node, kind: str) -> list[ts.Node]:
    found = [node] if node.type == kind else []
    for child in node.children:
        found.extend(_nodes(child, kind))
    return found


def _commands(name: str) -> list[tuple[int, str, list[ts.Node]]]:
    """(line, command name as written, its elements) for every command of ``name``.ps1."""
    return _commands_in((PS_DIR / f"{name}.ps1").read_bytes())


def _commands_in(source: bytes) -> list[tuple[int, str, list[ts.Node]]]:
    tree = PARSER.parse(source)
    out = []
    for command in _nodes(tree.root_node, "command"):
        head = next((c for c in command.children if c.type == "command_name"), None)
        if head is None:
            continue
        body = next((c for c in command.children if c.type == "command_elements"), None)
        elements = [c for c in body.children if c.type != "command_argument_sep"] if body else []
        out.append((command.start_point[0] + 1, head.text.decode(), elements))
    return out


def _proxy_misuse(source: bytes) -> list[str]:
    bad = []
    for line, command, elements in _commands_in(source):
        if command.lower() not in JEA_PROXIES:
            continue  # module-qualified (Microsoft.PowerShell.Utility\...) or another command
        i = 0
        while i < len(elements):
            text = elements[i].text.decode()
            value = elements[i + 1].text.decode() if i + 1 < len(elements) else ""
            is_parameter = elements[i].type == "command_parameter"
            parameter = text.lstrip("-").lower() if is_parameter else "property"
            if not is_parameter:
                value, i = text, i - 1  # positional: binds to -Property
            if parameter == "inputobject":
                pass
            elif parameter == "property":
                values = {v.strip(" '\"").lower() for v in value.split(",")}
                if not values <= PROXY_PROPERTIES:
                    bad.append(f"line {line}: {command} -Property {value}")
            else:
                bad.append(f"line {line}: {command} {text}")
                if i + 1 < len(elements) and elements[i + 1].type == "command_parameter":
                    i -= 1  # a switch: no value to skip
            i += 2
    return bad


@pytest.mark.parametrize("name", SCRIPTS)
def test_jea_restricted_proxies_are_module_qualified(name: str) -> None:
    bad = _proxy_misuse((PS_DIR / f"{name}.ps1").read_bytes())
    assert not bad, (f"{name}.ps1 runs in the JEA endpoint, where these cmdlets are restricted "
                     f"proxies; call Microsoft.PowerShell.Utility\\... or avoid them: {bad}")


def test_the_proxy_rule_catches_what_the_endpoint_refuses() -> None:
    source = (b"$a = $x | Select-Object -First 1\n"
              b"$b = ($x | Measure-Object -Property Length -Sum).Sum\n"
              b"$c = $x | Microsoft.PowerShell.Utility\\Select-Object -First 1\n"
              b"$d = $x | Select-Object -Property Name\n"
              b"$e = Measure-Object -InputObject $x\n")
    assert _proxy_misuse(source) == ["line 1: Select-Object -First",
                                     "line 2: Measure-Object -Property Length",
                                     "line 2: Measure-Object -Sum"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_hyperv_cmdlet_exists_on_every_supported_release(name: str) -> None:
    documented = _documented_hyperv_cmdlets()
    tree = PARSER.parse((PS_DIR / f"{name}.ps1").read_bytes())
    own = {f.children[1].text.decode().lower() for f in _nodes(tree.root_node,
                                                                "function_statement")}
    unknown = sorted({f"{command} (line {line})" for line, command, _ in _commands(name)
                      if HYPERV_NOUN.match(command) and command.lower() not in documented | own})
    assert not unknown, (f"{name}.ps1 calls Hyper-V cmdlets that Windows Server 2016-2025 do "
                         f"not have (tests/hosts/data/hyperv-cmdlets.txt): {unknown}")


def test_the_documented_list_is_the_real_one() -> None:
    documented = _documented_hyperv_cmdlets()
    assert {"checkpoint-vm", "get-vmsnapshot", "remove-vmsnapshot", "rename-vmsnapshot",
            "export-vmsnapshot", "get-vhd", "get-vmharddiskdrive"} <= documented
    assert "set-vmsnapshot" not in documented  # no Hyper-V version has it


# Restore-HvbVm's own Get-VM call belongs to the restore rework (defect 13); until it lands
# this marks it, and strict=True makes the fix remove the mark.
@pytest.mark.parametrize("name", SCRIPTS)
def test_vm_names_are_never_wildcard_patterns(name: str) -> None:
    """Get-VM -Name (and -VMName elsewhere) accept wildcards (windows-powershell-docs
    hyper-v/Get-VM.md, -Name: "Accept wildcard characters: True"): 'ERP*' would match every
    ERP VM and 'SRV[PROD]' none. A VM given by name is found by exact comparison."""
    bad = []
    for line, command, elements in _commands(name):
        if not HYPERV_NOUN.match(command):
            continue
        texts = [e.text.decode().lower() for e in elements]
        for i, text in enumerate(texts):
            if text in ("-name", "-vmname") and i + 1 < len(texts) \
                    and texts[i + 1].startswith("$") and command.lower() == "get-vm":
                bad.append(f"line {line}: {command} {text} {texts[i + 1]}")
            if text == "-vmname" and i + 1 < len(texts) and texts[i + 1].startswith("$"):
                bad.append(f"line {line}: {command} {text} {texts[i + 1]}")
        if command.lower() == "get-vm" and elements and elements[0].type != "command_parameter":
            bad.append(f"line {line}: {command} {texts[0]} (positional -Name)")
    assert not bad, f"{name}.ps1 passes a VM name as a wildcard pattern: {bad}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_json_arrays_are_unrolled_in_windows_powershell(name: str) -> None:
    """Windows PowerShell 5.1's ConvertFrom-Json writes a JSON array as ONE object (7.x
    enumerates; PowerShell-Docs ConvertFrom-Json 5.1, PowerShell/PowerShell issue 3424):
    @($json | ConvertFrom-Json) is then a one-element array holding the whole list."""
    tree = PARSER.parse((PS_DIR / f"{name}.ps1").read_bytes())
    bad = []
    for array in _nodes(tree.root_node, "array_expression"):
        pipelines = _nodes(array, "pipeline_chain")
        if not pipelines:
            continue
        last = [c for c in pipelines[0].children if c.type == "command"]
        if last and last[-1].children[0].text.decode().lower().endswith("convertfrom-json"):
            bad.append(f"line {array.start_point[0] + 1}: {array.text.decode()}")
    assert not bad, f"{name}.ps1: add '| ForEach-Object {{ $_ }}' to unroll: {bad}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_times_are_formatted_with_the_invariant_culture(name: str) -> None:
    """In a .NET custom format ':' is the culture's time separator and '/' its date separator
    (dotnet docs, "Custom date and time format strings", "The ':' custom format specifier"):
    a host in another culture would write another text than the schema's."""
    tree = PARSER.parse((PS_DIR / f"{name}.ps1").read_bytes())
    bad = []
    for call in _nodes(tree.root_node, "invokation_expression"):
        member = next((c for c in call.children if c.type == "member_name"), None)
        if member is None or member.text.decode().lower() != "tostring":
            continue
        arguments = next((c for c in call.children if c.type == "argument_list"), None)
        text = arguments.text.decode() if arguments else ""
        if re.search(r"['\"][^'\"]*[:/][^'\"]*['\"]", text) and "InvariantCulture" not in text:
            bad.append(f"line {call.start_point[0] + 1}: {call.text.decode()}")
    assert not bad, f"{name}.ps1 formats a time with the host's culture: {bad}"


def test_a_helper_copied_into_several_scripts_is_the_same_everywhere() -> None:
    """Each script runs alone (by hand, and as one function of the JEA module), so a helper
    several of them need (Assert-HvbRoot, Use-HvbShadowRecord, Publish-HvbRunShare, ...) is
    copied into each: the copies must not drift apart."""
    import re
    from collections import defaultdict

    bodies: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted((REPO / "powershell").glob("*.ps1")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^function ([\w-]+).*?^}$", text, flags=re.M | re.S):
            bodies[match.group(1)][path.name] = match.group(0)
    shared = {name: copies for name, copies in bodies.items() if len(copies) > 1}
    assert "Assert-HvbRoot" in shared and "Use-HvbShadowRecord" in shared  # the scan found them
    for name, copies in shared.items():
        assert len(set(copies.values())) == 1, f"{name} differs between {sorted(copies)}"


def _parameter(elements: list[ts.Node], name: str) -> str | None:
    wanted = f"-{name.lower()}"
    for i, element in enumerate(elements):
        if element.type == "command_parameter" and element.text.decode().lower() == wanted:
            return elements[i + 1].text.decode() if i + 1 < len(elements) else ""
    return None


def test_a_shadow_copy_share_lists_the_files_the_account_may_not_read() -> None:
    """Access-based enumeration hides from a user what NTFS refuses him (windows-powershell-docs
    smbshare/New-SmbShare.md, -FolderEnumerationMode): such a file would be left out of a files
    backup silently. The shadow-copy share is Unrestricted, so it is listed, refused at open
    and named in the run (HVB-SOURCE-DENIED)."""
    shares = [els for _line, name, els in _commands("New-HvbShadowCopy")
              if name.lower() == "new-smbshare"]
    assert shares, "New-HvbShadowCopy makes no share"
    assert {_parameter(els, "FolderEnumerationMode") for els in shares} == {"Unrestricted"}


def _hresult_matcher() -> tuple[str, list[tuple[str, str]]]:
    """New-HvbShadowCopy's Test-HvbHresult pattern (as .NET builds it) and its calls."""
    text = (PS_DIR / "New-HvbShadowCopy.ps1").read_text(encoding="utf-8")
    template = re.search(r"\$Text -match \((.+)\)\n", text)
    assert template, "Test-HvbHresult's pattern not found"
    calls = re.findall(r"Test-HvbHresult \$call\.Output '(\w+)' '([0-9A-Fa-f]{8})'", text)
    return template.group(1), calls


def _pattern(template: str, name: str, hex_code: str) -> str:
    unsigned = int(hex_code, 16)
    signed = unsigned - 2**32 if unsigned >= 2**31 else unsigned
    values = {"$Name": name, "$Hex": hex_code, "$unsigned": str(unsigned), "$signed": str(signed)}
    pieces = re.findall(r"'([^']*)'|(\$\w+)", template)
    return "".join(literal or values[var] for literal, var in pieces)


@pytest.mark.parametrize(("printed", "matches"), [
    ("Returned HRESULT: 0x8004231f", True), ("Error 0x8004231F.", True),
    ("Error: 8004231f", True), ("code 2147754783", True), ("hr = -2147212513", True),
    ("- Error text: VSS_E_INSUFFICIENT_STORAGE", True), ("0x8004231f0", False),
    ("12147754783", False), ("a8004231f", False)])
def test_hresults_are_recognised_in_every_form_vss_prints(printed: str, matches: bool) -> None:
    """An HRESULT reaches DiskShadow's output as 0x8004231F, without 0x, or in decimal (signed:
    an HRESULT is an Int32): each is matched, never a longer number containing it."""
    template, calls = _hresult_matcher()
    assert ("VSS_E_INSUFFICIENT_STORAGE", "8004231F") in calls
    pattern = _pattern(template, "VSS_E_INSUFFICIENT_STORAGE", "8004231F")
    assert bool(re.search(pattern, printed, re.I)) is matches


def test_no_hresult_is_matched_as_a_bare_literal() -> None:
    """An HRESULT written into a -match pattern catches one form only: every one goes through
    Test-HvbHresult, with its code as hex text (a 0x8004231F literal is a negative Int32)."""
    for path in sorted(PS_DIR.glob("*.ps1")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"-match\s+'[^']*0x[0-9A-Fa-f]{8}", line):
                raise AssertionError(f"{path.name}:{number}: HRESULT matched as a literal")
