"""NTFS permissions on a simulated host, as the onboarded account meets them through a per-run
shadow-copy share.

Windows applies both the share's permissions and the NTFS permissions of each file, and the
stricter wins (windows-powershell-docs ``smbshare/New-SmbShare.md``; docs/host-scripts.md,
"Files the account may not read"). ``Initialize-HvbHost.ps1 -ShareRoot`` gives the account an
inherited Read ACE on each files root; an entry whose inheritance is disabled (a private
folder: Administrators and SYSTEM only) does not get it, and the account is refused it. A
shadow copy carries the ACLs the volume had when it was made.

The world keeps such entries in ``state["ntfs_protected"]`` (Windows paths, live volume);
``New-HvbShadowCopy`` freezes them per copy (``shadow_copies[id]["ntfs_protected"]``), and
:func:`refused` answers for a path read through the copy's share.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

STATE_KEY = "ntfs_protected"


def protected_under(state: dict[str, Any], volume: str) -> list[str]:
    """The protected entries of ``volume`` (``D:\\``), relative to its root, lower case."""
    prefix = volume.lower()
    return sorted(p.lower()[len(prefix):].strip("\\") for p in state.get(STATE_KEY, [])
                  if p.lower().startswith(prefix))


def _is_under(relative: str, protected: list[str]) -> bool:
    path = relative.lower().strip("\\")
    return any(path == p or path.startswith(p + "\\") for p in protected)


@lru_cache(maxsize=8)
def _copies(state_file: str, _mtime_ns: int) -> dict[str, list[str]]:
    state = json.loads(Path(state_file).read_text())
    return {str(c.get("share", "")).lower(): list(c.get("ntfs_protected", []))
            for c in state.get("shadow_copies", {}).values()}


def refused(root: Path, windows_path: str) -> bool:
    """Whether the onboarded account is refused ``\\\\HOST\\hvb-<run>-<n>$\\...`` by the NTFS
    permissions frozen in that shadow copy (the entry, or a folder above it, protected).
    Paths of other shares (SQL dumps, VM exports: granted by the script) are never refused."""
    parts = [p for p in windows_path[2:].split("\\") if p] if windows_path.startswith(
        "\\\\") else []
    if len(parts) < 3:
        return False
    state_file = root / "state.json"
    try:
        copies = _copies(str(state_file), state_file.stat().st_mtime_ns)
    except FileNotFoundError:
        return False
    protected = copies.get(parts[1].lower())
    return bool(protected) and _is_under("\\".join(parts[2:]), protected or [])
