"""Site agents that stopped giving news: an alert "agent injoignable depuis ..." to the hotline.

The central scheduler checks at every tick. An enrolled agent (not revoked) of a site still in
the configuration is silent when its last contact (any authenticated call: heartbeat,
delivery, configuration), or its enrollment if it never called, is older than its site's
``heartbeat_minutes``. Each silence is one alert (kind ``agent_silent``, code
HVB-AGENT-SILENT), recorded once; it is resolved when the agent is heard again, and a later
silence is a new alert. The jobs themselves are judged by their schedules as ever: a run that
did not arrive by the end of its window is NON EXECUTEE.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.findings import AlertKind
from orchestrator.history.models import AgentRow, AlertRow

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
    return alerted


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
