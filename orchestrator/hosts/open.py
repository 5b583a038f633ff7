"""Opening a host: ``open_host`` builds the session a configured host needs: :class:`WinrmHost`
for a real Windows host, :class:`SimulatedHost` for the demo and tests, :class:`LocalHost` for
files on the orchestrator's own machine.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from orchestrator.clock import Clock
from orchestrator.config.models import FilesJob, HypervVmJob, SqlServerJob
from orchestrator.config.resolved import HostSettings
from orchestrator.hosts.local import LocalHost
from orchestrator.hosts.session import HostSession
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from orchestrator.hosts.winrm import WinrmHost
from orchestrator.secrets import read_secret


def open_host(settings: HostSettings, clock: Clock) -> HostSession:
    """The session of one configured host (``LoadedConfig.host(label)``)."""
    host, label = settings.host, settings.label
    if host.transport == "simulated":
        return _simulated(settings, clock)
    if host.transport == "local":
        paths = [p for j in settings.jobs if isinstance(j, FilesJob) for p in j.paths]
        return LocalHost(label, [Path(p) for p in paths], now=clock.now)
    winrm = host.winrm
    assert winrm is not None  # validation guarantees it
    password = read_secret(f"the WinRM password of {label}", winrm.password_env,
                           settings.password_file)
    ca = str(settings.winrm_ca_file) if settings.winrm_ca_file else None
    return WinrmHost(
        label, host.address, username=winrm.username, password=password,
        port=winrm.port, ssl=winrm.scheme == "https", auth=winrm.auth,
        cert_validation=(ca or True) if winrm.cert_validation else False,
        configuration_name=winrm.configuration_name,
        operation_timeout_s=winrm.operation_timeout_s,
        read_timeout_s=winrm.read_timeout_s, connect_retries=winrm.connect_retries,
    )


def _simulated(settings: HostSettings, clock: Clock) -> SimulatedHost:
    """The simulated host holds what its jobs name: their VMs, databases and shares."""
    spec = WorldSpec()
    for job in settings.jobs:
        if isinstance(job, HypervVmJob):
            spec.vms.extend(v for v in job.vms if v not in spec.vms)
        elif isinstance(job, SqlServerJob):
            named = [] if "all" in [d.lower() for d in job.databases] else list(job.databases)
            spec.sql.setdefault(job.instance, []).extend(named)
        elif isinstance(job, FilesJob):
            spec.shares.extend(p for p in job.paths if p not in spec.shares)
    faults: tuple[Fault, ...] = ()
    simulated = settings.host.simulated
    if simulated is not None:
        spec.seed = simulated.seed
        spec.vm_disk_mb = simulated.vm_disk_mb
        spec.daily_change_percent = simulated.daily_change_percent
        spec.share_files = simulated.share_files
        spec.share_large_files_mb = list(simulated.share_large_files_mb)
        spec.sql_database_mb = list(simulated.sql_database_mb)
        spec.sql_edition = simulated.sql_edition
        faults = tuple(Fault(f.kind, f.target, tuple(f.dates), f.delay_s)
                       for f in simulated.faults)
    tz = settings.timezone

    def today() -> date:
        return clock.now().astimezone(tz).date()

    return SimulatedHost(settings.label, settings.simulated_root, spec, now=clock.now,
                         today=today, faults=faults,
                         jea=simulated is not None and simulated.jea)
