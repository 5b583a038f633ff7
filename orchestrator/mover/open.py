"""Which Source reads what a host's captures expose."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from orchestrator.config.resolved import HostSettings
from orchestrator.errors import SourceError
from orchestrator.hosts import simacl
from orchestrator.hosts.simworld import volume_path
from orchestrator.mover.smb import SmbSource, is_run_share
from orchestrator.mover.source import LocalSource, Source
from orchestrator.secrets import read_secret


def _run_shares_only(label: str, root: Path, windows_path: str) -> Path:
    """A simulated host reached as the onboarded account: what SmbSource without
    ``admin_shares`` reads, the per-run shares (``\\\\HOST\\hvb-...$``), and nothing else."""
    parts = [p for p in windows_path[2:].split("\\") if p] if windows_path.startswith(
        "\\\\") else []
    if len(parts) < 2 or not is_run_share(parts[1]):
        raise SourceError(f"{label}: {windows_path} is not on a per-run share: reading it needs "
                          "the administrative share, which the onboarded account (not an "
                          "administrator) cannot open; the host script must expose it through "
                          "a per-run share")
    return volume_path(root, windows_path)


class _RunShareSource(LocalSource):
    """The simulated host's SMB server for the onboarded account: per-run shares only, and
    each file's NTFS permissions as the shadow copy froze them (orchestrator/hosts/simacl.py):
    a protected entry is listed but refused, as with a Windows share whose folder enumeration
    is Unrestricted."""

    def __init__(self, label: str, root: Path) -> None:
        super().__init__(label, mapper=partial(_run_shares_only, label, root))
        self._root = root

    def _refused(self, host_path: str) -> bool:
        return simacl.refused(self._root, host_path)


def open_source(settings: HostSettings) -> Source:
    """Simulated host: the folders that hold its volumes; local host: this machine; Windows
    host: SMB with the WinRM account, through the per-run shares the scripts make; drive paths
    through administrative shares (``D$``) only outside the JEA endpoint, whose account is not
    an administrator."""
    host, label = settings.host, settings.label
    if host.transport == "simulated":
        if host.simulated is not None and host.simulated.jea:
            return _RunShareSource(label, settings.simulated_root)
        return LocalSource(label, mapper=partial(volume_path, settings.simulated_root))
    if host.transport == "local":
        return LocalSource(label)
    winrm = host.winrm
    assert winrm is not None
    password = read_secret(f"the password of {label}", winrm.password_env,
                           settings.password_file)
    return SmbSource(label, host.address, username=winrm.username, password=password,
                     admin_shares=winrm.configuration_name is None)
