"""Which Source reads what a host's captures expose."""

from __future__ import annotations

from orchestrator.config.load import LoadedConfig
from orchestrator.hosts.session import HostSession
from orchestrator.hosts.simulated import SimulatedHost
from orchestrator.mover.smb import SmbSource
from orchestrator.mover.source import LocalSource, Source
from orchestrator.secrets import read_secret


def source_for(loaded: LoadedConfig, client: str, host_name: str, session: HostSession) -> Source:
    """Simulated host: its local folder; local host: this machine; Windows host: SMB with
    the WinRM account (administrative shares ``D$`` for drive paths)."""
    host = loaded.config.clients[client].hosts[host_name]
    label = f"{client}/{host_name}"
    if isinstance(session, SimulatedHost):
        return LocalSource(label, mapper=session.local_path)
    if host.transport == "local":
        return LocalSource(label)
    winrm = host.winrm
    assert winrm is not None
    password = read_secret(f"the password of {label}", winrm.password_env, winrm.password_file,
                           loaded.base_dir)
    return SmbSource(label, host.address, username=winrm.username, password=password)
