"""Site agents that stopped giving news: an alert "agent injoignable depuis ..." to the hotline.

The central scheduler checks at every tick. An enrolled agent (not revoked) of a site still in
the configuration is silent when its last contact (any authenticated call: heartbeat,
delivery, configuration), or its enrollment if it never called, is older than its site's
``heartbeat_minutes``. Each silence is one alert (kind ``agent_silent``, code
HVB-AGENT-SILENT), recorded once; it is resolved when the agent is heard again, and a later
silence is a new alert. The jobs themselves are judged by their schedules as ever: a run that
did not arrive by the end of its window is NON EXECUTEE.

A site whose jobs are configured on the server but that has no agent enrolled (or only revoked
ones) is an alert too, "agent jamais enrôlé" (same kind and code, ``never_enrolled`` in its
details), once its jobs have been on the server for longer than the site's
``heartbeat_minutes``: its jobs cannot run anywhere. It is resolved when an agent enrolls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import CENTRAL_SITE
from orchestrator.findings import AlertKind
from orchestrator.history.models import AgentRow, AlertRow, ClientRow, JobRow
from orchestrator.humanize import typography

CODE = "HVB-AGENT-SILENT"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def heard_at(agent: AgentRow) -> datetime:
    """When ``agent`` was last heard: its last contact, or its enrollment if it never called."""
    return _aware(agent.last_seen_at or agent.enrolled_at)


def is_silent(agent: AgentRow, heartbeat_minutes: int, now: datetime) -> bool:
    """Whether ``agent`` has been silent for longer than its site's ``heartbeat_minutes``."""
    return now - heard_at(agent) > timedelta(minutes=heartbeat_minutes)


def silent_agents(loaded: LoadedConfig, sessions: sessionmaker[Session],
                  now: datetime) -> list[str]:
    """Record an alert for each agent newly silent, resolve those heard again; returns the
    names of the agents newly alerted."""
    config = loaded.config
    tz = config.msp.timezone
    alerted = []
    with sessions() as session, session.begin():
        open_alerts = {str((a.details or {}).get("agent")): a for a in session.scalars(
            select(AlertRow).where(AlertRow.kind == AlertKind.AGENT_SILENT.value,
                                   AlertRow.resolved_at.is_(None)))}
        for agent in session.scalars(select(AgentRow).order_by(AgentRow.site, AgentRow.name)):
            site = config.sites.get(agent.site)
            alert = open_alerts.get(agent.name)
            if agent.revoked_at is not None or site is None:
                if alert is not None:
                    alert.resolved_at = now  # revoked, or its site is gone: nothing to wait for
                continue
            heard = heard_at(agent)
            if not is_silent(agent, site.heartbeat_minutes, now):
                if alert is not None:
                    alert.resolved_at = now
                continue
            if alert is not None:
                continue  # told already
            local = heard.astimezone(tz)
            shown = site.name or agent.site
            silence = _duration(now - heard)
            session.add(AlertRow(
                kind=AlertKind.AGENT_SILENT.value, severity="error", created_at=now,
                details={"agent": agent.name, "site": agent.site, "code": CODE,
                         "heard_at": heard.isoformat(), "clients": _clients(loaded, agent.site)},
                message=(f"agent injoignable depuis le {local:%d/%m/%Y à %H:%M} : "
                         f"{agent.name} (site {shown}) n'a pas donné de nouvelles depuis "
                         f"{silence} (attendu toutes les {site.heartbeat_minutes}\u00a0min) ; "
                         "ses sauvegardes continuent sur le site mais n'arrivent plus ici")
                .replace(" : ", "\u00a0: ").replace(" ; ", "\u00a0; ")))
            alerted.append(agent.name)
        alerted += _never_enrolled(loaded, session, now)
    return alerted


def _never_enrolled(loaded: LoadedConfig, session: Session, now: datetime) -> list[str]:
    """Alert each site with jobs and no agent (not revoked) once its jobs have waited past
    its heartbeat; resolve those that have one now. Returns the sites newly alerted."""
    config = loaded.config
    open_alerts = {str((a.details or {}).get("site")): a for a in session.scalars(
        select(AlertRow).where(AlertRow.kind == AlertKind.AGENT_SILENT.value,
                               AlertRow.resolved_at.is_(None)))
        if (a.details or {}).get("never_enrolled")}
    served = set(session.scalars(select(AgentRow.site).where(AgentRow.revoked_at.is_(None))))
    since = _jobs_since(loaded, session)
    alerted = []
    for key, site in sorted(config.sites.items()):
        if key == CENTRAL_SITE:
            continue  # the central server's own jobs need no agent
        alert = open_alerts.get(key)
        waiting = since.get(key)
        if key in served or waiting is None:
            if alert is not None:
                alert.resolved_at = now  # an agent enrolled, or the site has no job left
            continue
        if alert is not None or now - waiting <= timedelta(minutes=site.heartbeat_minutes):
            continue
        local = waiting.astimezone(config.msp.timezone)
        shown = site.name or key
        session.add(AlertRow(
            kind=AlertKind.AGENT_SILENT.value, severity="error", created_at=now,
            details={"site": key, "code": CODE, "never_enrolled": True,
                     "configured_at": waiting.isoformat(),
                     "clients": _clients(loaded, key)},
            message=typography(
                f"agent jamais enrôlé : le site {shown} ({key}) a des sauvegardes configurées "
                f"depuis le {local:%d/%m/%Y à %H:%M} mais aucun agent inscrit ; elles ne "
                "tournent nulle part et sont comptées NON EXECUTEE (inscrire un agent : "
                f"hvbackup agent token --site {key})", "fr")))
        alerted.append(f"site:{key}")
    return alerted


def _jobs_since(loaded: LoadedConfig, session: Session) -> dict[str, datetime]:
    """For each site, since when its earliest enabled job is expected (on the server)."""
    sites = {(client_name, host_name): host.site
             for client_name, client in loaded.config.clients.items()
             for host_name, host in client.hosts.items()}
    hosts = {(ref.client_name, ref.job_name): sites.get((ref.client_name, ref.job.host))
             for ref in loaded.jobs() if ref.job.enabled}
    out: dict[str, datetime] = {}
    for client, job, since in session.execute(
            select(ClientRow.key, JobRow.key, JobRow.expected_since).join(ClientRow)
            .where(JobRow.active.is_(True), ClientRow.active.is_(True))):
        site = hosts.get((client, job))
        if site is None or since is None:
            continue
        since = _aware(since)
        out[site] = min(out.get(site, since), since)
    return out


def _clients(loaded: LoadedConfig, site: str) -> list[str]:
    return sorted(name for name, client in loaded.config.clients.items()
                  if any(host.site == site for host in client.hosts.values()))


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes}\u00a0min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}\u00a0h"
    return f"{hours // 24}\u00a0jours"
