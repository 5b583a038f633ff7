"""Which Source reads what a host's captures expose."""

from __future__ import annotations

from functools import partial

from orchestrator.config.resolved import HostSettings
from orchestrator.hosts.simworld import volume_path
from orchestrator.mover.smb import SmbSource
from orchestrator.mover.source import LocalSource, Source
from orchestrator.secrets import read_secret


def open_source(settings: HostSettings) -> Source:
    """Simulated host: the folders that hold its volumes; local host: this machine; Windows
    host: SMB with the WinRM account, through the per-run shares the scripts make; drive paths
    through administrative shares (``D$``) only outside the JEA endpoint, whose account is not
    an administrator."""
    host, label = settings.host, settings.label
    if host.transport == "simulated":
        return LocalSource(label, mapper=partial(volume_path, settings.simulated_root))
    if host.transport == "local":
        return LocalSource(label)
    winrm = host.winrm
    assert winrm is not None
    password = read_secret(f"the password of {label}", winrm.password_env,
                           settings.password_file)
    return SmbSource(label, host.address, username=winrm.username, password=password,
                     admin_shares=winrm.configuration_name is None)
