"""The folders a simulated host lets hvbackup touch, as Initialize-HvbHost.ps1 records them.

On a real host the onboarding writes ``%ProgramData%\\hvbackup\\roots.json`` (staging roots,
share roots, restore roots) and every script checks its paths against it (``Assert-HvbRoot``):
the JEA virtual account is a local administrator, so the caller must never choose what it may
delete, snapshot or re-parent. :func:`onboard` applies the onboarding's rules (``Test-HvbRoot``)
and :func:`check` the scripts' refusal, with the same error codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PureWindowsPath

DEFAULT_RESTORE = "D:\\Restore"
# What the onboarding refuses to record as a root, or a parent of one: $env:SystemRoot,
# ProgramFiles (both) and ProgramData (the roots file itself lives there).
PROTECTED = ("C:\\Windows", "C:\\Program Files", "C:\\Program Files (x86)", "C:\\ProgramData")
KINDS = ("staging", "shares", "restore")


class RootRefused(Exception):
    """A path outside the host's roots, or a host never onboarded (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Roots:
    staging: tuple[str, ...]
    shares: tuple[str, ...]
    restore: tuple[str, ...]

    def of(self, kind: str) -> tuple[str, ...]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind of root {kind!r}")
        found: tuple[str, ...] = getattr(self, kind)
        return found


def _full(path: str) -> str | None:
    """The normalised local path (``..`` resolved, no trailing ``\\``), None if not local."""
    win = PureWindowsPath(path)
    if len(win.drive) != 2 or not win.root:  # UNC (\\server\share), \\?\..., relative
        return None
    parts: list[str] = []
    for part in win.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "\\".join([win.drive.upper(), *parts])


def _inside(path: str, root: str) -> bool:
    p, r = path.lower(), root.lower()
    return p == r or p.startswith(r + "\\")


def onboard(staging: list[str], shares: list[str], restore: list[str]) -> Roots:
    """The roots as Initialize-HvbHost.ps1 would record them; raises ValueError for a root it
    refuses: not a local folder, a whole volume for staging or restore, or overlapping
    Windows, Program Files or ProgramData."""
    def valid(root: str, kind: str) -> str:
        full = _full(root)
        if full is None:
            raise ValueError(f"-{kind}Root {root}: give a local folder (D:\\...), not a share "
                             "or a relative path")
        if kind != "Share" and len(full) <= 2:
            raise ValueError(f"-{kind}Root {root}: a whole volume")
        for protected in PROTECTED:
            if _inside(full, protected) or _inside(protected, full):
                raise ValueError(f"-{kind}Root {root} overlaps {protected}")
        return full

    return Roots(tuple(valid(r, "Staging") for r in staging),
                 tuple(valid(r, "Share") for r in shares),
                 tuple(valid(r, "Restore") for r in restore))


def check(roots: Roots | None, path: str, kind: str, host: str) -> str:
    """``path`` normalised if it lies inside one of the host's ``kind`` roots.

    Raises :class:`RootRefused`: ``ROOTS_NOT_CONFIGURED`` on a host never onboarded,
    ``PATH_NOT_ALLOWED`` for anything else (a share, another folder, ``..`` out of a root).
    """
    if roots is None:
        raise RootRefused("ROOTS_NOT_CONFIGURED", f"C:\\ProgramData\\hvbackup\\roots.json is "
                          f"missing: run Initialize-HvbHost.ps1 on {host} (it records the "
                          "folders hvbackup may use).")
    allowed = roots.of(kind)
    full = _full(path)
    if full is not None and any(_inside(full, root) for root in allowed):
        return full
    raise RootRefused("PATH_NOT_ALLOWED", f"{path} is not inside the {kind} folders allowed on "
                      f"{host} ({', '.join(allowed) or 'none'}); Initialize-HvbHost.ps1 sets "
                      "them (-StagingRoot, -ShareRoot, -RestoreRoot).")
