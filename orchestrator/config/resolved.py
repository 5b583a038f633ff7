"""Settings resolved for one opener: what a host session, a baie or a repository needs, with
its paths made absolute and nothing else of the configuration.

``LoadedConfig.host(...)``, ``.baie(...)`` and ``.repository(...)`` build them (raising
UsageError for a name the configuration lacks); the openers (``hosts/open.py``,
``mover/open.py``, ``baie/open.py``, ``store/open.py``) take them and never look anything up.
Defaults stay in the models: nothing here restates one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from orchestrator.config.models import AnyJob, Host, LocalBaie, SftpBaie


@dataclass(frozen=True)
class HostSettings:
    """One configured host (``CLIENT/HOST``)."""

    label: str
    host: Host
    jobs: tuple[AnyJob, ...]  # the client's jobs on this host (what the simulator holds)
    timezone: ZoneInfo
    simulated_root: Path  # where a simulated host keeps its disks, databases and shares
    winrm_ca_file: Path | None  # resolved
    password_file: Path | None  # resolved; or host.winrm.password_env

    @property
    def client(self) -> str:
        return self.label.partition("/")[0]


@dataclass(frozen=True)
class BaieSettings:
    """One baie, for one client's repository on it."""

    name: str
    client: str
    baie: LocalBaie | SftpBaie
    mount: Path | None  # a local baie's folder
    key_file: Path | None  # an SFTP baie's private key
    known_hosts: Path | None  # and its known_hosts
    maintenance_key: Path | None = None  # an append-only SFTP baie's maintenance key

    @property
    def root(self) -> str:
        """The client's folder on an SFTP baie."""
        assert isinstance(self.baie, SftpBaie)
        return f"{self.baie.path.rstrip('/')}/{self.client}"


@dataclass(frozen=True)
class RepositorySettings:
    """One client's repository on one baie, and the keys that write it."""

    client: str
    baie: BaieSettings
    public_key: Path | None  # None: the client has no encryption key configured
    escrow_key: Path | None  # the MSP escrow public key, when the client chose escrow
    escrow_missing: bool  # escrow chosen but msp.escrow_public_key_file not set
    writer_key: Path
    cache: Path
