"""Where a recorded file name is restored under ``--to``, and which names are refused.

A snapshot records names as the host gave them: ``D:\\Partages\\a.txt`` or
``\\\\NAS\\compta\\a.txt`` for Windows sources, ``/srv/x`` for this machine. The anchor
(drive letter, UNC server and share, POSIX root) becomes the first folder under ``--to``
(``D``, ``NAS_compta``; ``unc`` for a relative Windows name such as a SQL dump's
``SQL01\\COMPTA\\COMPTA.bak``); what follows must be plain names. A name that could reach
outside ``--to`` once normalised, on this machine or on a Windows one, is refused
(:class:`UnsafeName`), whatever the name's origin: ``..`` (also ``..\\..`` inside one POSIX
component, and ``.. `` which Windows trims to ``..``), a drive-relative name (``C:..\\x``), a
root-relative one (``\\x``), a device path (``\\\\?\\``, ``\\\\.\\``), a colon (drive or
alternate data stream), a Windows device name (``CON``, ``NUL.txt``, ``COM1``...), a NUL byte
or a control character.

Pure functions: no file is touched here (links inside ``--to`` are :mod:`restoreout`'s job).
"""

from __future__ import annotations

import os
import re

_DRIVE = re.compile(r"^[A-Za-z]:")
# Reserved names on Windows, with or without an extension, whatever the case (Microsoft,
# "Naming Files, Paths, and Namespaces"); the superscript digits count too.
_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?$",
                     re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f]")


class UnsafeName(ValueError):
    """A recorded name that cannot be restored under ``--to``; ``reason`` says why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name!r}: {reason}")
        self.name = name
        self.reason = reason


def is_windows_name(name: str) -> bool:
    """A name recorded from a Windows source: a drive or UNC path, or a relative one with
    backslashes (a SQL Server dump is recorded as ``SQL01\\COMPTA\\COMPTA.bak``). A name that
    starts with ``/`` comes from a POSIX source, where a backslash is an ordinary letter."""
    return bool(_DRIVE.match(name)) or ("\\" in name and not name.startswith("/"))


def restore_parts(name: str, *, windows_target: bool | None = None) -> tuple[str, ...]:
    """The folders and file name under ``--to`` for the recorded ``name``; raises
    :class:`UnsafeName`. ``windows_target`` (default: this machine is Windows) adds the checks
    for names that Windows would read differently (device names, ``:``, trailing dots)."""
    on_windows = os.name == "nt" if windows_target is None else windows_target
    if "\x00" in name:
        raise UnsafeName(name, "contains a NUL byte")
    if not name:
        raise UnsafeName(name, "is empty")
    windows = is_windows_name(name)
    if windows:
        anchor, rest = _windows_anchor(name)
        pieces = [p for p in re.split(r"[\\/]", rest) if p not in ("", ".")]
    else:
        anchor = ""
        pieces = [p for p in name.split("/") if p not in ("", ".")]
    for piece in pieces:
        _check_piece(name, piece, windows=windows or on_windows)
    parts = ((anchor,) if anchor else ()) + tuple(pieces)
    if not parts:
        raise UnsafeName(name, "names no file")
    return parts


def _windows_anchor(name: str) -> tuple[str, str]:
    """(first folder, rest) of a drive or UNC name."""
    if name.startswith("\\\\") or name.startswith("\\/"):
        body = name[2:]
        if body[:2] in ("?\\", ".\\", "?/", "./") or body in ("?", "."):
            raise UnsafeName(name, "is a device path (\\\\?\\ or \\\\.\\), not a file name")
        pieces = re.split(r"[\\/]", body, maxsplit=2)
        if len(pieces) < 2 or not pieces[0] or not pieces[1]:
            raise UnsafeName(name, "is a UNC path without server and share")
        for piece in pieces[:2]:
            _check_piece(name, piece, windows=True)
        return f"{pieces[0]}_{pieces[1]}", pieces[2] if len(pieces) > 2 else ""
    if name.startswith("\\"):
        raise UnsafeName(name, "is relative to the root of an unknown drive")
    if not _DRIVE.match(name):
        return "unc", name  # relative (an instance's dumps): under unc/, as always
    if name[2:3] not in ("\\", "/"):
        raise UnsafeName(name, f"is relative to the current folder of drive {name[:2]}")
    return name[0].upper(), name[3:]


def _check_piece(name: str, piece: str, *, windows: bool) -> None:
    if piece == ".." or ".." in re.split(r"[\\/]", piece):
        raise UnsafeName(name, "goes up a folder (..)")
    if _CONTROL.search(piece):
        raise UnsafeName(name, "contains a control character")
    if not windows:
        return
    if piece.rstrip(" .") in ("", ".."):
        raise UnsafeName(name, f"has a component ({piece!r}) Windows reads as . or ..")
    if ":" in piece:
        raise UnsafeName(name, "has a colon inside (a drive or an alternate data stream)")
    if _DEVICE.match(piece.rstrip(" .")) or _DEVICE.match(piece.split(".")[0].rstrip(" ")):
        raise UnsafeName(name, f"uses a Windows device name ({piece!r})")
