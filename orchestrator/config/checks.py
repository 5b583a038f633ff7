"""Checks that span several parts of the configuration.

``check_references`` works on the raw data (so that its problems are reported together with
type errors, all at once) and is defensive about shapes the models will reject anyway.
``warnings`` runs on a valid configuration and reports what is allowed but probably unintended
(a missing key file, an unset environment variable, a single copy).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import CENTRAL_SITE
from orchestrator.config.suggest import did_you_mean
from orchestrator.config.yamlread import PathKey, Positions, format_path
from orchestrator.errors import ConfigProblem

if TYPE_CHECKING:
    from orchestrator.config.load import LoadedConfig

_IDENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_THIS_MACHINE = {"localhost", "127.0.0.1", "::1", "[::1]"}  # no network between us and it
_WINDOWS_JOBS = {"hyperv-vm": "Hyper-V", "sql-server": "SQL Server"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _choices(word: str, names: list[str]) -> str:
    return did_you_mean(word, names, listed_as="defined", if_none=" (none defined)")


def check_references(
    data: dict[str, Any], positions: Positions, filename: str
) -> list[ConfigProblem]:
    """Problems of names and references: bad names, unknown hosts and baies, missing keys."""
    problems: list[ConfigProblem] = []

    def add(path: PathKey, message: str) -> None:
        problems.append(
            ConfigProblem(filename, positions.line_of(path, key=True), format_path(path), message)
        )

    baies = _dict(data.get("baies"))
    baie_names = list(baies)
    for name in baie_names:
        if not _IDENT.match(str(name)):
            add(("baies", name), _bad_name(name))
    _check_distinct_baies(baies, add)

    sites = _dict(data.get("sites"))
    site_names = [CENTRAL_SITE, *(str(n) for n in sites if n != CENTRAL_SITE)]
    for name in sites:
        if not _IDENT.match(str(name)):
            add(("sites", name), _bad_name(name))

    smtp = _dict(data.get("smtp"))
    if smtp.get("security") == "none" and smtp.get("username") \
            and str(smtp.get("host", "")).lower() not in _THIS_MACHINE:
        add(("smtp", "security"),
            f"security: none with a username: the password of {smtp['username']} would cross "
            "the network in clear; use starttls (port 587) or tls (port 465), or a relay on "
            "this machine (localhost)")

    msp = _dict(data.get("msp"))
    for client_name, client_raw in _dict(data.get("clients")).items():
        cpath: PathKey = ("clients", client_name)
        if not _IDENT.match(str(client_name)):
            add(cpath, _bad_name(client_name))
        client = _dict(client_raw)
        hosts = _dict(client.get("hosts"))
        jobs = _dict(client.get("jobs"))
        client_copies = _names_list(client.get("copies"))
        for i, copy in enumerate(client_copies):
            if copy not in baies:
                add((*cpath, "copies", i),
                    f"copy {copy!r} names no baie" + _choices(copy, baie_names))

        for host_name, host_raw in hosts.items():
            hpath = (*cpath, "hosts", host_name)
            if not _HOST_NAME.match(str(host_name)):
                add(hpath, f"{host_name!r} is not a valid host name: letters, digits, '-', "
                           "'_' and '.'")
            _check_host(_dict(host_raw), hpath, add)
            site = _dict(host_raw).get("site")
            if isinstance(site, str) and site not in site_names:
                add((*hpath, "site"), f"site {site!r} is not declared under 'sites:'"
                    + did_you_mean(site, site_names, listed_as="declared"))

        _check_quota(client, msp, cpath, add)

        encryption = _dict(client.get("encryption"))
        if jobs and not encryption.get("public_key_file"):
            add((*cpath, "encryption"),
                "a client with jobs needs 'encryption: {public_key_file: ...}' (create the key "
                f"pair with: hvbackup keys init -c FILE {client_name})")
        if encryption.get("escrow") is True and not msp.get("escrow_public_key_file"):
            add((*cpath, "encryption", "escrow"),
                "escrow is requested but msp.escrow_public_key_file is not set")

        vm_jobs: dict[tuple[str, str], str] = {}  # (host, VM) -> the job that backs it up
        for job_name, job_raw in jobs.items():
            jpath = (*cpath, "jobs", job_name)
            if not _IDENT.match(str(job_name)):
                add(jpath, _bad_name(job_name))
            job = _dict(job_raw)
            if job.get("type") == "hyperv-vm" and isinstance(job.get("host"), str):
                for i, vm in enumerate(_names_list(job.get("vms"))):
                    key = (str(job["host"]), vm.lower())  # Hyper-V names ignore case
                    if key in vm_jobs:
                        add((*jpath, "vms", i),
                            f"VM {vm!r} of host {job['host']!r} is already backed up by job "
                            f"{vm_jobs[key]!r}: two jobs would take checkpoints of it and "
                            "sweep each other's")
                    else:
                        vm_jobs[key] = str(job_name)
            host_ref = job.get("host")
            if isinstance(host_ref, str) and host_ref not in hosts:
                add((*jpath, "host"),
                    f"host {host_ref!r} is not defined in client {client_name!r}"
                    + _choices(host_ref, list(hosts)))
            elif isinstance(host_ref, str):
                transport = _dict(hosts[host_ref]).get("transport", "winrm")
                jtype = job.get("type")
                if transport == "local" and jtype in _WINDOWS_JOBS:
                    add((*jpath, "type"),
                        f"a {jtype} job needs a Windows host with {_WINDOWS_JOBS[jtype]}; host "
                        f"{host_ref!r} is 'transport: local' (files on this machine only)")
                if transport == "local" and job.get("vss") is True:
                    add((*jpath, "vss"), f"host {host_ref!r} is 'transport: local': shadow copies "
                                         "(VSS) exist only on Windows hosts")
                host_raw = _dict(hosts[host_ref])
                least = (_dict(host_raw.get("winrm")).get("configuration_name") is not None
                         or _dict(host_raw.get("simulated")).get("jea") is True)
                if jtype == "hyperv-vm" and least and job.get("mode", "checkpoint") != "export":
                    # docs/lab/shares.md: the frozen chain stays in the VM's folder, whose
                    # NTFS ACLs give the onboarded account nothing; production disks' ACLs
                    # are not changed. The export goes to staging, shared for the run.
                    add((*jpath, "mode") if "mode" in job else jpath,
                        f"host {host_ref!r} is reached through the JEA endpoint, whose account "
                        "cannot read the VM's own folder: checkpoint mode would fail every "
                        "night; set 'mode: export' (the export is read through a per-run share)")
                if job.get("prepare") == "orchestrator" and transport != "local":
                    add((*jpath, "prepare"), "the orchestrator's self-backup reads this "
                                             f"machine's files: host {host_ref!r} must be "
                                             "'transport: local'")
            job_copies = _names_list(job.get("copies"))
            for i, copy in enumerate(job_copies):
                if copy not in baies:
                    add((*jpath, "copies", i),
                        f"copy {copy!r} names no baie" + _choices(copy, baie_names))
            if "copies" not in job and "copies" not in client:
                add(jpath, f"no copies: set 'copies: [baie, ...]' on the job or on client "
                           f"{client_name!r} (baies: {', '.join(baie_names) or 'none'})")
            databases = _names_list(job.get("databases"))
            if job.get("type") == "sql-server" and len(databases) > 1 and any(
                d.lower() == "all" for d in databases
            ):
                add((*jpath, "databases"),
                    "'all' already means every database: list names, or 'all' alone "
                    "(use exclude_databases to leave some out)")
    return problems


def _check_quota(client: dict[str, Any], msp: dict[str, Any], cpath: PathKey,
                 add: Any) -> None:
    """A client moved up tiers has a subscribed volume that is one of the MSP's tiers."""
    policy = _dict(client.get("quota")).get("on_overrun") or _dict(msp.get("quota")).get(
        "on_overrun") or "block"
    if policy != "next_tier":
        return
    tiers = msp.get("volume_tiers_gb")
    where = (*cpath, "quota", "on_overrun") if "on_overrun" in _dict(client.get("quota")) \
        else cpath
    if not isinstance(tiers, list) or not tiers:
        add(where, "quota.on_overrun is next_tier but msp.volume_tiers_gb lists no tiers "
                   "(e.g. volume_tiers_gb: [100, 250, 500, 1000])")
        return
    volume = client.get("quota_gb")
    if volume is None:
        add(where, "quota.on_overrun is next_tier but the client has no quota_gb: set it to "
                   "its subscribed tier")
    elif isinstance(volume, int | float) and not any(
            isinstance(t, int | float) and abs(t - volume) < 1e-9 for t in tiers):
        shown = ", ".join(f"{t:g}" for t in tiers if isinstance(t, int | float))
        add((*cpath, "quota_gb"), f"quota_gb {volume:g} is not one of the MSP's tiers "
                                  f"({shown}): a client moved up tiers subscribes to one")


def _bad_name(name: object) -> str:
    return (f"{name!r} is not a valid name: use lower-case letters, digits, '-' and '_' "
            "(it appears in commands, paths and reports)")


def _check_host(host: dict[str, Any], hpath: PathKey, add: Any) -> None:
    transport = host.get("transport", "winrm")
    winrm = host.get("winrm")
    if transport == "winrm":
        if not isinstance(winrm, dict):
            add((*hpath, "transport") if "transport" in host else hpath,
                "a winrm host needs a 'winrm:' block with username and password_env "
                "(or password_file)")
        else:
            auth = winrm.get("auth", "negotiate")
            has_secret = bool(winrm.get("password_env") or winrm.get("password_file"))
            if not winrm.get("username") and auth != "kerberos":
                add((*hpath, "winrm"), "missing 'username' (e.g. 'ACME\\svc-backup')")
            if not has_secret and auth != "kerberos":
                add((*hpath, "winrm"),
                    "no credentials: set password_env (an environment variable name) or "
                    "password_file")
            if winrm.get("scheme") == "http" and auth in ("ntlm", "credssp"):
                add((*hpath, "winrm", "scheme"),
                    f"'{auth}' over plain http would expose the credentials: use https")
    elif winrm is not None:
        add((*hpath, "winrm"), f"a 'winrm:' block on a '{transport}' host would be ignored; "
                               "remove it or set 'transport: winrm'")
    if host.get("simulated") is not None and transport != "simulated":
        add((*hpath, "simulated"), f"a 'simulated:' block on a '{transport}' host would be "
                                   "ignored; remove it or set 'transport: simulated'")


def _check_distinct_baies(baies: dict[str, Any], add: Any) -> None:
    """Two copies on the same disks are one copy: refuse two baies naming the same place."""
    seen: dict[tuple[str, str, str], str] = {}
    for name, raw in baies.items():
        baie = _dict(raw)
        where = (str(baie.get("type")), str(baie.get("host", "")).lower(),
                 str(baie.get("path", "")).rstrip("/\\"))
        if not baie.get("path"):
            continue
        if where in seen:
            add(("baies", name, "path"),
                f"same place as baie {seen[where]!r}: two copies must live on distinct disk "
                "arrays")
        else:
            seen[where] = name


def warnings(loaded: LoadedConfig, filename: str) -> list[ConfigProblem]:
    """Allowed but probably unintended; shown by ``validate``, never fatal."""
    out: list[ConfigProblem] = []
    pos = loaded.positions
    cfg = loaded.config

    def warn(path: PathKey, message: str) -> None:
        out.append(ConfigProblem(filename, pos.line_of(path, key=True), format_path(path), message))

    def file_exists(path: PathKey, value: str | None, what: str) -> None:
        if value and not loaded.resolve(value).exists():
            warn(path, f"{what} {value!r} does not exist (yet)")

    def env_set(path: PathKey, name: str | None) -> None:
        if name and name not in os.environ:
            warn(path, f"environment variable {name} is not set in this shell; the service "
                       "must have it")

    file_exists(("msp", "escrow_public_key_file"), cfg.msp.escrow_public_key_file,
                "escrow public key")
    used_sites = {h.site for c in cfg.clients.values() for h in c.hosts.values()}
    for site in cfg.sites:
        if site not in used_sites and site != CENTRAL_SITE:
            warn(("sites", site), "no host names this site ('site: " + site + "'): its agent "
                                  "would have nothing to do")
    if cfg.smtp:
        env_set(("smtp", "password_env"), cfg.smtp.password_env)
        file_exists(("smtp", "password_file"), cfg.smtp.password_file, "password file")
    for name, baie in cfg.baies.items():
        if baie.type == "sftp":
            file_exists(("baies", name, "key_file"), baie.key_file, "key file")
            file_exists(("baies", name, "known_hosts"), baie.known_hosts, "known_hosts file")
    for cname, client in cfg.clients.items():
        cpath: PathKey = ("clients", cname)
        if client.encryption:
            public = client.encryption.public_key_file
            if not loaded.resolve(public).exists():
                warn((*cpath, "encryption", "public_key_file"),
                     f"public key {public!r} does not exist yet: create it with "
                     f"'hvbackup keys init -c FILE {cname}'")
        for hname, host in client.hosts.items():
            if host.winrm:
                hpath = (*cpath, "hosts", hname, "winrm")
                env_set((*hpath, "password_env"), host.winrm.password_env)
                file_exists((*hpath, "password_file"), host.winrm.password_file, "password file")
                file_exists((*hpath, "ca_file"), host.winrm.ca_file, "CA file")
                account = (host.winrm.username or "").replace("@", "\\").split("\\")
                if host.winrm.configuration_name is None and "hvbackup" in account:
                    warn((*hpath, "username"),
                         "the account Initialize-HvbHost.ps1 makes is no administrator: it "
                         "reaches only the JEA endpoint (add configuration_name: hvbackup)")
                if not host.winrm.cert_validation:
                    warn((*hpath, "cert_validation"),
                         "certificate validation is off: anyone on the path can impersonate "
                         "this host")
        for jname, job in client.jobs.items():
            machine = getattr(job, "instance", "").split("\\")[0].lower()
            host_cfg = client.hosts.get(job.host)
            names = {job.host.lower()} | ({host_cfg.address.split(".")[0].lower()}
                                          if host_cfg and host_cfg.address else set())
            if machine and machine not in {".", "(local)", "localhost"} | names:
                warn((*cpath, "jobs", jname, "instance"),
                     f"the instance runs on {machine.upper()}, not on host {job.host!r}: "
                     "SQL Server is reached with the WinRM identity, which cannot hop to a "
                     "second machine (declare that machine as a host)")
            copies = loaded.copies_of(client, job)
            if len(copies) == 1:
                warn((*cpath, "jobs", jname),
                     f"a single copy ({copies[0]}): the contract promises two copies at two "
                     "sites")
    return out

