"""``hvbackup host check``: is this host ready for its jobs? Verdicts in a technician's words.

It connects the way backups do (listener, certificate, account, endpoint), reads the host's
inventory and holds it against the client's jobs: every VM there with its VSS integration
service healthy, the SQL instances reachable with their databases, room on the staging volume,
leftovers of interrupted runs, the time the host takes to answer. ``trial=True`` goes further,
as a backup would: a checkpoint of each VM taken and merged back, a dump of each database made,
verified and removed (it loads the host: run it outside production hours).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import FilesJob, HypervVmJob, SqlServerJob
from orchestrator.errors import HostAuthError, HostError, HostUnreachable, HvbError
from orchestrator.hosts.session import HostSession
from orchestrator.humanize import size

SLOW_S = 10.0  # an inventory usually answers within a few seconds
OK, WARN, FAIL = "ok", "warning", "FAIL"


@dataclass(frozen=True)
class Verdict:
    topic: str
    level: str  # ok | warning | FAIL
    text: str


def check_host(loaded: LoadedConfig, label: str, open_session: Callable[[], HostSession],
               *, trial: bool = False, slow_s: float = SLOW_S,
               now: Callable[[], float] = time.monotonic,
               run_id: str = "hostcheck") -> list[Verdict]:
    client_name, _, host_name = label.partition("/")
    client = loaded.config.clients[client_name]
    host_cfg = client.hosts[host_name]
    jobs = [j for j in client.jobs.values() if j.host == host_name]
    out: list[Verdict] = []
    if host_cfg.transport == "winrm":
        winrm = host_cfg.winrm
        if winrm is None or not winrm.configuration_name:
            out.append(Verdict("endpoint", WARN, "backups connect to the administrators' "
                               "endpoint: run Initialize-HvbHost.ps1 on the host and set "
                               "'winrm: {configuration_name: hvbackup}' so that a stolen "
                               "orchestrator password cannot open an administrator shell"))
        if winrm is not None and winrm.scheme == "http":
            out.append(Verdict("listener", WARN, "WinRM over plain HTTP: use the HTTPS "
                               "listener that Initialize-HvbHost.ps1 creates (port 5986)"))
    elif host_cfg.transport == "simulated":
        out.append(Verdict("connection", OK, "simulated host: no WinRM listener, certificate "
                           "or endpoint to check"))
    session = open_session()
    try:
        started = now()
        try:
            inventory = session.run("Get-HvbInventory")
        except HostUnreachable as exc:
            return [*out, Verdict("connection", FAIL, f"{exc.message} — is the host up, the "
                                  "HTTPS listener made (Initialize-HvbHost.ps1) and port 5986 "
                                  "open from this orchestrator?")]
        except HostAuthError as exc:
            return [*out, Verdict("connection", FAIL, exc.message)]
        except HostError as exc:
            return [*out, Verdict("connection", FAIL, exc.message)]
        took = now() - started
        out.append(Verdict("connection", OK, f"connected; {inventory['host']['name']} runs "
                           f"{inventory['host']['os_version']}"))
        if took > slow_s:
            out.append(Verdict("speed", WARN, f"the host took {took:.1f} s to answer the "
                               f"inventory (expected under {slow_s:g} s): check its load "
                               "during the backup window"))
        out += _vms(jobs, inventory)
        out += _sql(jobs, inventory)
        out += _staging(host_cfg.staging_dir, jobs, inventory)
        out += _leftovers(inventory)
        if trial:
            out += _trial(session, jobs, host_cfg.staging_dir, run_id)
    finally:
        session.close()
    if not any(isinstance(j, HypervVmJob | SqlServerJob | FilesJob) for j in jobs):
        out.append(Verdict("jobs", WARN, f"no job uses {label} yet"))
    return out


def _vms(jobs: list[Any], inventory: dict[str, Any]) -> list[Verdict]:
    out = []
    found = {vm["name"].lower(): vm for vm in inventory.get("vms", [])}
    for job in jobs:
        if not isinstance(job, HypervVmJob):
            continue
        for name in job.vms:
            vm = found.get(name.lower())
            if vm is None:
                known = ", ".join(sorted(v["name"] for v in inventory.get("vms", []))) or "none"
                out.append(Verdict(f"VM {name}", FAIL, f"no VM named {name} on the host "
                                   f"(VMs there: {known})"))
                continue
            vss = vm["vss"]
            if vss["present"] and vss["enabled"] and vss["healthy"]:
                out.append(Verdict(f"VM {name}", OK, f"{vm['state']}, VSS integration "
                                   "service healthy: application-consistent backups"))
                continue
            why = ("the 'Backup (volume shadow copy)' integration service is off"
                   if not vss["enabled"] else f"VSS in the guest reports '{vss['status']}'")
            if job.consistency == "application":
                out.append(Verdict(f"VM {name}", FAIL, f"{why}: backups will fail (the job "
                                   "asks for application consistency). Enable the service; "
                                   "in the guest, 'vssadmin list writers'"))
            else:
                out.append(Verdict(f"VM {name}", WARN, f"{why}: backups will be "
                                   "crash-consistent only (AVERTISSEMENT)"))
    return out


def _sql(jobs: list[Any], inventory: dict[str, Any]) -> list[Verdict]:
    out = []
    instances = {i["instance"].lower(): i for i in inventory.get("sql", [])}
    for job in jobs:
        if not isinstance(job, SqlServerJob):
            continue
        found = instances.get(job.instance.lower())
        if found is None:
            out.append(Verdict(f"SQL {job.instance}", FAIL, "no such instance on the host "
                               f"(instances: {', '.join(sorted(instances)) or 'none'})"))
            continue
        if found.get("error"):
            out.append(Verdict(f"SQL {job.instance}", FAIL, f"cannot query the instance: "
                               f"{found['error']} — the account needs a SQL login with the "
                               "db_backupoperator role (or sysadmin)"))
            continue
        names = {d["name"].lower() for d in found["databases"]}
        missing = [d for d in job.databases if d.lower() != "all" and d.lower() not in names]
        if missing:
            out.append(Verdict(f"SQL {job.instance}", FAIL, "databases not found: "
                               + ", ".join(missing)))
        else:
            out.append(Verdict(f"SQL {job.instance}", OK, f"{found['edition']}, "
                               f"{len(names)} database(s) visible"))
        if job.backup_compression and not found.get("supports_compression"):
            out.append(Verdict(f"SQL {job.instance}", WARN, f"backup_compression is on but "
                               f"{found['edition']} cannot compress backups: the dumps will "
                               "be uncompressed"))
    return out


def _staging(staging: str, jobs: list[Any], inventory: dict[str, Any]) -> list[Verdict]:
    needed = 0
    for job in jobs:
        if isinstance(job, SqlServerJob):
            for instance in inventory.get("sql", []):
                if instance["instance"].lower() == job.instance.lower():
                    wanted = {d.lower() for d in job.databases}
                    needed += sum(d["size_bytes"] for d in instance["databases"]
                                  if "all" in wanted or d["name"].lower() in wanted)
        elif isinstance(job, HypervVmJob) and job.mode == "export":
            for vm in inventory.get("vms", []):
                if vm["name"].lower() in {v.lower() for v in job.vms}:
                    needed += sum(d.get("size_bytes", 0) for d in vm.get("disks", []))
    drive = staging[:2].upper()
    volume = next((v for v in inventory.get("volumes", []) if v["drive"].upper() == drive), None)
    if volume is None:
        level = FAIL if needed else WARN
        return [Verdict("staging", level, f"no volume {drive} on the host for staging_dir "
                        f"{staging}")]
    free = volume["free_bytes"]
    text = f"{drive} has {size(free, 'en')} free; the dumps and exports need about " \
           f"{size(needed, 'en')}"
    if free < needed * 1.1:
        return [Verdict("staging", FAIL, text + ": free space there or move staging_dir")]
    if free < needed * 2:
        return [Verdict("staging", WARN, text + ": little room to grow")]
    return [Verdict("staging", OK, text)]


def _leftovers(inventory: dict[str, Any]) -> list[Verdict]:
    left = inventory.get("leftovers", {})
    checkpoints, shadows = left.get("checkpoints", []), left.get("shadow_copies", [])
    names = ", ".join(f"{c['vm']}: {c['name']}" for c in checkpoints[:5])
    out = [Verdict("leftovers", WARN, f"{len(checkpoints)} checkpoint(s) and {len(shadows)} "
                   f"shadow copy(ies) left by interrupted runs ({names}); the next run "
                   "removes them")] if checkpoints or shadows else [
        Verdict("leftovers", OK, "no checkpoint or shadow copy left by hvbackup")]
    unmerged = [(vm.get("name", "?"), f) for vm in inventory.get("vms", [])
                for f in vm.get("unmerged_files") or []]
    if unmerged:  # a merge that outlived its checkpoint: the VM still writes to these
        out.append(Verdict("merges", WARN, f"{len(unmerged)} differencing disk(s) not merged "
                           "after their checkpoint was removed ("
                           + ", ".join(f"{vm}: {f}" for vm, f in unmerged[:5])
                           + "): see Hyper-V Manager (Merging) and HVB-CHECKPOINT-NOT-MERGED"))
    return out


def _trial(session: HostSession, jobs: list[Any], staging: str, run_id: str) -> list[Verdict]:
    out = []
    for job in jobs:
        if isinstance(job, HypervVmJob):
            # The trial takes what the job takes: a checkpoint, or (mode: export, required
            # through the JEA endpoint) a checkpoint exported to staging, removed afterwards.
            export = job.mode == "export"
            for vm in job.vms:
                try:
                    made = session.run("New-HvbCheckpoint", VMName=vm, RunId=run_id,
                                       AllowCrashConsistent=True, Mode=job.mode,
                                       StagingPath=staging if export else None)
                except HvbError as exc:
                    out.append(Verdict(f"trial VM {vm}", FAIL, exc.message))
                    continue
                try:
                    removed = session.run("Remove-HvbCheckpoint", VMName=vm,
                                          CheckpointName=made["checkpoint_name"])
                except HvbError as exc:
                    out.append(Verdict(f"trial VM {vm}", FAIL, f"checkpoint taken but not "
                                       f"removed: {exc.message}"))
                    continue
                if not removed["merged"]:
                    out.append(Verdict(f"trial VM {vm}", FAIL, "checkpoint taken, but its "
                                       "merge did not finish: check the VM's disks in Hyper-V "
                                       "Manager (the next run retries the removal)"))
                else:
                    out.append(Verdict(f"trial VM {vm}", OK, f"{made['consistency']} "
                                       f"checkpoint taken{', exported' if export else ''} "
                                       f"and merged in {removed['merge_seconds']} s"))
            if export:
                try:
                    session.run("Remove-HvbStaging", StagingPath=staging, RunId=run_id)
                except HvbError as exc:
                    out.append(Verdict("trial staging", WARN, exc.message))
        elif isinstance(job, SqlServerJob):
            try:
                result = session.run("Invoke-HvbSqlBackup", Instance=job.instance,
                                     Database=list(job.databases),
                                     ExcludeDatabase=list(job.exclude_databases),
                                     StagingPath=staging, RunId=run_id,
                                     TrustServerCertificate=job.trust_server_certificate)
                failed = [f"{d['name']}: {d['error']['message']}"
                          for d in result["databases"] if d.get("error")]
                if failed:
                    out.append(Verdict(f"trial SQL {job.instance}", FAIL, "; ".join(failed)))
                else:
                    out.append(Verdict(f"trial SQL {job.instance}", OK,
                                       f"{len(result['databases'])} dump(s) made and verified "
                                       "(RESTORE VERIFYONLY)"))
            except HvbError as exc:
                out.append(Verdict(f"trial SQL {job.instance}", FAIL, exc.message))
            finally:
                try:
                    session.run("Remove-HvbStaging", StagingPath=staging, RunId=run_id)
                except HvbError as exc:
                    out.append(Verdict("trial staging", WARN, exc.message))
    return out

