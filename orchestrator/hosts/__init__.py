"""Hosts: one ``HostSession`` door (run a script, get a dict) and its three kinds.

``open_host`` builds the session a configured host needs: :class:`WinrmHost` for a real
Windows host, :class:`SimulatedHost` for the demo and tests, :class:`LocalHost` for files on
the orchestrator's own machine.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import FilesJob, HypervVmJob, SqlServerJob
from orchestrator.errors import UsageError
from orchestrator.hosts.local import LocalHost
from orchestrator.hosts.session import HostSession
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from orchestrator.hosts.winrm import WinrmHost
from orchestrator.secrets import read_secret

__all__ = ["HostSession", "LocalHost", "SimulatedHost", "WinrmHost", "open_host"]


def open_host(loaded: LoadedConfig, label: str, clock: Clock) -> HostSession:
    """The session for ``CLIENT/HOST``; raises UsageError when it is not configured."""
    client_name, _, host_name = label.partition("/")
    client = loaded.config.clients.get(client_name)
    if client is None or host_name not in client.hosts:
        known = [f"{c}/{h}" for c, cl in loaded.config.clients.items() for h in cl.hosts]
        raise UsageError(f"no host {label!r} in {loaded.path} (hosts: {', '.join(known)})")
    host = client.hosts[host_name]
    if host.transport == "simulated":
        settings = host.simulated
        spec = WorldSpec()
        for job in client.jobs.values():
            if job.host != host_name:
                continue
            if isinstance(job, HypervVmJob):
                spec.vms.extend(v for v in job.vms if v not in spec.vms)
            elif isinstance(job, SqlServerJob):
                named = [] if "all" in [d.lower() for d in job.databases] else list(job.databases)
                spec.sql.setdefault(job.instance, []).extend(named)
            elif isinstance(job, FilesJob):
                spec.shares.extend(p for p in job.paths if p not in spec.shares)
        faults: tuple[Fault, ...] = ()
        if settings is not None:
            spec.seed = settings.seed
            spec.vm_disk_mb = settings.vm_disk_mb
            spec.daily_change_percent = settings.daily_change_percent
            spec.share_files = settings.share_files
            spec.share_large_files_mb = list(settings.share_large_files_mb)
            spec.sql_database_mb = list(settings.sql_database_mb)
            spec.sql_edition = settings.sql_edition
            faults = tuple(Fault(f.kind, f.target, tuple(f.dates), f.delay_s)
                           for f in settings.faults)
        root = (loaded.resolve(settings.data_dir) if settings and settings.data_dir
                else loaded.state_dir / "simulated" / client_name / host_name)
        tz = loaded.config.msp.timezone

        def today() -> date:
            return clock.now().astimezone(tz).date()

        def now() -> datetime:
            return clock.now()

        return SimulatedHost(label, Path(root), spec, now=now, today=today, faults=faults)
    if host.transport == "local":
        paths = [p for j in client.jobs.values() if isinstance(j, FilesJob)
                 and j.host == host_name for p in j.paths]
        return LocalHost(label, [Path(p) for p in paths], now=clock.now)
    settings_w = host.winrm
    assert settings_w is not None  # validation guarantees it
    password = read_secret(f"the WinRM password of {label}", settings_w.password_env,
                           settings_w.password_file, loaded.base_dir)
    ca = str(loaded.resolve(settings_w.ca_file)) if settings_w.ca_file else None
    return WinrmHost(
        label, host.address, username=settings_w.username, password=password,
        port=settings_w.port, ssl=settings_w.scheme == "https", auth=settings_w.auth,
        cert_validation=(ca or True) if settings_w.cert_validation else False,
        configuration_name=settings_w.configuration_name,
        operation_timeout_s=settings_w.operation_timeout_s,
        read_timeout_s=settings_w.read_timeout_s, connect_retries=settings_w.connect_retries,
    )
