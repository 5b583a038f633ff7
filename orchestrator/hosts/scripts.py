"""The contract between the orchestrator and the scripts in powershell/.

Each script declares its parameters in a typed ``param()`` block and writes one JSON object:
``{"ok": true, ...}`` (checked against ``schemas/<Script>.schema.json``) or
``{"ok": false, "error": {"code", "message"}}`` (``schemas/_error.schema.json``). Both the WinRM
adapter and the simulator go through :func:`check_call` and :func:`interpret_result`, so they
cannot drift apart silently.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from orchestrator.errors import ScriptFailed, ScriptOutputInvalid, UsageError
from orchestrator.resources import powershell_files, read_text

# Error codes after which the same call may work a little later: ScriptFailed.permanent is
# False for them, and that is the only thing the job's retries look at. GUEST_VSS_FAILED: a
# guest's VSS writers that fail (busy, in a retryable state) often succeed minutes later; a job
# that allows crash-consistent backups falls back at once instead (the script does not fail).
RETRYABLE_CODES = frozenset({
    "TIMEOUT", "VSS_OPERATION_IN_PROGRESS", "SQL_CONNECT_FAILED", "VSS_VOLUME_IN_USE",
    "GUEST_VSS_FAILED",
})

# What a technician should check, by error code (the runbooks say more).
HINTS = {
    "GUEST_VSS_FAILED": "check the VM's 'Backup (volume shadow copy)' integration service and, "
                        "inside the guest, 'vssadmin list writers'; or allow crash-consistent "
                        "backups for this job (consistency: application-or-crash)",
    "CHECKPOINT_FAILED": "not guest VSS (its integration service is healthy): read the host's "
                         "Hyper-V-VMMS event log (19070/19080/19090) and check free space on "
                         "the VM's volume",
    "CHECKPOINT_MODE_REFUSED": "the account the JEA endpoint connects with cannot read the "
                               "VM's own folder: set mode: export on the job (hvbackup "
                               "validate says so)",
    "VM_NOT_FOUND": "check the VM name in the job (hvbackup inventory lists the host's VMs)",
    "STAGING_FULL": "free space on the staging volume or point staging_dir elsewhere",
    "SQL_CONNECT_FAILED": "check that the instance runs and that the WinRM account may log in "
                          "to it (SQL login for the service account)",
    "SQL_VERIFY_FAILED": "the backup file is damaged: check the staging disk",
    "VSS_MAX_SHADOW_COPIES": "old shadow copies fill the volume: 'vssadmin list shadows'",
    "VSS_OPERATION_IN_PROGRESS": "another backup is taking a shadow copy; runs will retry",
    "HYPERV_MODULE_MISSING": "install the Hyper-V PowerShell module on the host",
}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    mandatory: bool
    # [ValidatePattern('...')]: PowerShell refuses a value (each item of an array) it does not
    # match, case-insensitively, before the script runs.
    pattern: str | None = None

    @property
    def is_switch(self) -> bool:
        return self.type.lower() == "switch"


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    parameters: dict[str, Parameter]
    schema: dict[str, Any]


def script_names() -> list[str]:
    """Every script shipped in powershell/ (without the .ps1 suffix)."""
    return sorted(p.name[:-4] for p in powershell_files().iterdir() if p.name.endswith(".ps1"))


@functools.cache
def load_script(name: str) -> Script:
    """The script ``name`` with its parameters and result schema; raises UsageError if unknown."""
    if name not in script_names():
        raise UsageError(f"no host script named {name!r} (known: {', '.join(script_names())})")
    text = read_text(powershell_files(), f"{name}.ps1")
    schema = json.loads(read_text(powershell_files(), f"schemas/{name}.schema.json"))
    return Script(name, text, parse_parameters(text), schema)


@functools.cache
def _error_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(read_text(powershell_files(), "schemas/_error.schema.json"))
    return loaded


_PARAM_START = re.compile(r"^\s*param\s*\(", re.IGNORECASE | re.MULTILINE)


_VALIDATE_PATTERN = re.compile(r"\[ValidatePattern\(\s*'((?:[^']|'')*)'\s*\)\]", re.IGNORECASE)


def parse_parameters(text: str) -> dict[str, Parameter]:
    """The parameters of a script's top-level ``param()`` block (name, type, mandatory)."""
    match = _PARAM_START.search(text)
    if not match:
        return {}
    depth, start = 0, match.end() - 1
    end = start
    for end in range(start, len(text)):
        if text[end] == "(":
            depth += 1
        elif text[end] == ")":
            depth -= 1
            if depth == 0:
                break
    block = text[start + 1:end]
    params: dict[str, Parameter] = {}
    for piece in _split_top_level(block):
        plain = re.sub(r"'[^']*'|\"[^\"]*\"", "''", piece)  # quotes may hold a '$'
        found = re.search(r"\$(\w+)", plain)
        if not found:
            continue
        attributes, name = plain[: found.start()], found.group(1)
        types = re.findall(r"\[([A-Za-z][\w.]*(?:\[\])?)\]", attributes)
        pattern = _VALIDATE_PATTERN.search(piece)
        params[name] = Parameter(
            name=name,
            type=types[-1] if types else "object",
            mandatory=bool(re.search(r"Mandatory", attributes, re.IGNORECASE)),
            pattern=pattern.group(1).replace("''", "'") if pattern else None,
        )
    return params


def _split_top_level(block: str) -> list[str]:
    """Split a param block on commas that are not inside (), [] or {} or quotes."""
    pieces, depth, current, quote = [], 0, [], ""
    for char in block:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def check_call(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check a call against the script's param() block; returns the parameters to send.

    Switches set to False are dropped (absent = off). Raises UsageError on an unknown or
    missing mandatory parameter, or a value its [ValidatePattern] refuses (as PowerShell would
    before the script runs): a bug in the caller, caught before touching a host.
    """
    script = load_script(name)
    unknown = sorted(set(params) - set(script.parameters))
    if unknown:
        raise UsageError(f"{name}.ps1 has no parameter {', '.join(unknown)} "
                         f"(it takes {', '.join(script.parameters)})")
    missing = [p.name for p in script.parameters.values() if p.mandatory and params.get(p.name)
               in (None, "", [])]
    if missing:
        raise UsageError(f"{name}.ps1 needs {', '.join(missing)}")
    sent: dict[str, Any] = {}
    for key, value in params.items():
        pattern = script.parameters[key].pattern
        if pattern and value is not None:
            for item in value if isinstance(value, list | tuple) else [value]:
                if not re.search(pattern, str(item), re.IGNORECASE):
                    raise UsageError(f"{name}.ps1 refuses -{key} {item!r}: it must match "
                                     f"{pattern}")
        if script.parameters[key].is_switch:
            if value:
                sent[key] = True
        elif value is not None:
            sent[key] = value
    return sent


def interpret_result(name: str, where: str, result: Any) -> dict[str, Any]:
    """Validate a script's result; return it when ``ok``.

    Raises :class:`ScriptFailed` for ``{"ok": false}`` (with the script's code and a hint) and
    :class:`ScriptOutputInvalid` when the result breaks the contract.
    """
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except json.JSONDecodeError as exc:
            raise ScriptOutputInvalid(
                f"{where}: {name}.ps1 did not return JSON ({exc.msg} at character {exc.pos}): "
                f"{result[:200]!r}"
            ) from None
    if not isinstance(result, dict) or "ok" not in result:
        raise ScriptOutputInvalid(f"{where}: {name}.ps1 returned no result object: "
                                  f"{str(result)[:200]!r}")
    schema = load_script(name).schema if result["ok"] is True else _error_schema()
    try:
        jsonschema.validate(result, schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise ScriptOutputInvalid(
            f"{where}: {name}.ps1 returned a result that breaks its contract at {path}: "
            f"{exc.message[:300]}"
        ) from None
    if result["ok"] is not True:
        code = result["error"]["code"]
        hint = HINTS.get(code)
        message = f"{where}: {name}.ps1 failed ({code}): {result['error']['message']}"
        raise ScriptFailed(message + (f" — {hint}" if hint else ""), script_code=code,
                           permanent=code not in RETRYABLE_CODES)
    checked: dict[str, Any] = result
    return checked
