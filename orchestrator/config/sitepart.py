"""The part of the configuration one site's agent receives (docs/agents.md).

An agent is trusted with its own site and nothing else: the clients that have hosts on the
site, only those hosts and the jobs on them, the baies those jobs copy to, the site itself and
the MSP's settings that hold nothing secret. Secrets travel as they are written in the file:
references (``password_env``, ``password_file``), which the agent resolves on its own machine;
no secret value is ever in the configuration, so none can be in its part.

What stays on the server: the history's URL and the state folder (the agent has its own), the
mail relay (the server sends the reports), the MSP's heartbeat URL (it may carry a token), a
baie's maintenance access (the account that may delete: the agent writes through the
append-only one), and every other site's clients, hosts, jobs and baies.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config.models import CENTRAL_SITE, Config
from orchestrator.config.suggest import did_you_mean
from orchestrator.errors import UsageError

# Msp keys an agent has no use for and that may hold something a site should not read.
_MSP_KEPT_OUT = frozenset({"heartbeat_url"})


def site_names(config: Config) -> list[str]:
    """Every site: the central server's own, then the declared ones."""
    return [CENTRAL_SITE, *(name for name in config.sites if name != CENTRAL_SITE)]


def site_part(config: Config, site: str) -> dict[str, Any]:
    """The document (YAML keys, JSON values, only what the technician wrote) that an agent of
    ``site`` may receive. Raises :class:`UsageError` for a site the configuration lacks.

    The result loads with the same models as the whole file, except for a site with no job
    yet, whose part names no baie.
    """
    if site not in site_names(config):
        raise UsageError(f"no site {site!r} in the configuration"
                         + did_you_mean(site, site_names(config), listed_as="sites"))
    whole = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    clients: dict[str, Any] = {}
    used_baies: set[str] = set()
    for cname, client in config.clients.items():
        hosts = [h for h, host in client.hosts.items() if host.site == site]
        if not hosts:
            continue
        raw = dict(whole["clients"][cname])
        raw["hosts"] = {h: whole["clients"][cname]["hosts"][h] for h in hosts}
        jobs = {j: whole["clients"][cname]["jobs"][j]
                for j, job in client.jobs.items() if job.host in hosts}
        raw["jobs"] = jobs
        clients[cname] = raw
        for job in (client.jobs[j] for j in jobs):
            used_baies.update(job.copies or client.copies or [])
    part: dict[str, Any] = {
        "version": whole["version"],
        "msp": {k: v for k, v in whole["msp"].items() if k not in _MSP_KEPT_OUT},
        "baies": {name: {k: v for k, v in whole["baies"][name].items() if k != "maintenance"}
                  for name in config.baies if name in used_baies},
        "clients": clients,
    }
    if site in whole.get("sites", {}):
        part["sites"] = {site: whole["sites"][site]}
    return part


def all_site_jobs(config: Config) -> dict[str, frozenset[tuple[str, str]]]:
    """Every site (those without a job too), with the ``(client, job)`` of every job on its
    hosts."""
    found: dict[str, set[tuple[str, str]]] = {site: set() for site in site_names(config)}
    for cname, client in config.clients.items():
        for jname, job in client.jobs.items():
            if job.host in client.hosts:
                found.setdefault(client.hosts[job.host].site, set()).add((cname, jname))
    return {site: frozenset(jobs) for site, jobs in found.items()}
