"""The agents page (``/agents``, hotline and admin accounts only): each site of the
configuration and its agents, what their last heartbeat said (version, jobs running with the
bytes read so far, runs waiting in the spool), and whether they are silent past their site's
``heartbeat_minutes`` (the same rule as the alert, agent/silence.py). A site that has jobs and
no agent enrolled is a row of its own: nothing of its jobs can arrive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from orchestrator.agent.silence import heard_at, is_silent
from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import CENTRAL_SITE
from orchestrator.dashboard.access import staff_only
from orchestrator.dashboard.request import page_viewer, render, settings_of
from orchestrator.history.models import AgentRow

router = APIRouter(include_in_schema=False)

DEFAULT_HEARTBEAT_MINUTES = 15  # a site no longer in the configuration


@dataclass(frozen=True)
class Running:
    client: str
    job: str
    step: str | None
    done_bytes: int | None


@dataclass(frozen=True)
class AgentLine:
    site: str
    site_name: str
    name: str | None  # None: no agent enrolled for this site
    version: str | None = None
    heard: datetime | None = None
    silent: bool = False
    revoked: bool = False
    heartbeat_minutes: int = DEFAULT_HEARTBEAT_MINUTES
    running: list[Running] = field(default_factory=list)
    queued_runs: int = 0


def _running(items: list[Any]) -> list[Running]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and item.get("client") and item.get("job"):
            done = item.get("done_bytes")
            out.append(Running(str(item["client"]), str(item["job"]), item.get("step"),
                               int(done) if isinstance(done, int) else None))
    return out


def agent_lines(agents: list[AgentRow], loaded: LoadedConfig | None,
                now: datetime) -> list[AgentLine]:
    """One line per agent, by site then name, and one per site with jobs but no agent."""
    sites = loaded.config.sites if loaded is not None else {}
    lines = []
    for agent in agents:
        site = sites.get(agent.site)
        minutes = site.heartbeat_minutes if site else DEFAULT_HEARTBEAT_MINUTES
        revoked = agent.revoked_at is not None
        lines.append(AgentLine(
            site=agent.site, site_name=(site.name if site and site.name else agent.site),
            name=agent.name, version=agent.version, heard=heard_at(agent),
            silent=not revoked and is_silent(agent, minutes, now), revoked=revoked,
            heartbeat_minutes=minutes, running=[] if revoked else _running(agent.running),
            queued_runs=agent.queued_runs))
    served = {a.site for a in agents if a.revoked_at is None}
    if loaded is not None:
        used = {host.site for client in loaded.config.clients.values()
                for host in client.hosts.values()}
        for key, site in sites.items():
            if key != CENTRAL_SITE and key in used and key not in served:
                lines.append(AgentLine(site=key, site_name=site.name or key, name=None,
                                       silent=True, heartbeat_minutes=site.heartbeat_minutes))
    return sorted(lines, key=lambda a: (a.site, a.name or ""))


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request) -> Response:
    viewer = page_viewer(request)
    staff_only(viewer)
    settings = settings_of(request)
    with settings.sessions() as session:
        agents = list(session.scalars(select(AgentRow).order_by(AgentRow.site,
                                                                AgentRow.name)))
    return render(request, settings, viewer, "agents.html",
                  agents=agent_lines(agents, settings.config, settings.now()))
