"""What to snapshot on a host, and how to always clean up: VMs, SQL Server, folders."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exposed:
    """A file or folder a capture makes readable, as the host names it."""

    path: str  # where to read it (a frozen disk, a .bak in staging, a shadow-copy link)
    shown_as: str  # the name recorded in the snapshot (the folder's real name, ...)
    obj: str  # the VM, database or folder it belongs to
