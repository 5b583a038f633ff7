"""/api/agent/v1: what site agents ask of the central server (docs/agents.md).

Every route but ``/enroll`` needs ``Authorization: Bearer <agent token>``; an unknown or
revoked token gets 401. An agent acts for its site only: it reads its site's part of the
configuration and its site's run-now requests, and delivers runs and heartbeats for its
site's jobs; a job of another site is refused (403) with the same answer as a job that does
not exist, so nothing of another site can be learnt.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select

from orchestrator.agent import delivery, registry
from orchestrator.agent.protocol import (
    PREFIX,
    ConfigOut,
    EnrollIn,
    EnrollOut,
    HeartbeatIn,
    HeartbeatOut,
    KnownSnapshot,
    RunIn,
    RunOut,
    RunRequestOut,
    WriterKeysOut,
)
from orchestrator.agent.registry import AgentIdentity
from orchestrator.config.load import LoadedConfig
from orchestrator.dashboard.request import settings_of
from orchestrator.errors import UsageError
from orchestrator.history.models import ClientRow, JobRow, SnapshotRow
from orchestrator.history.queries import jobs_expected_since, last_scheduled_runs
from orchestrator.store.repository import load_or_create_writer_secret

router = APIRouter(prefix=PREFIX, tags=["agents"])

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
_JUST_AFTER = timedelta(microseconds=1)
# Said without the names the agent sent: an answer never repeats anything of another site.
_NOT_ON_SITE = ("the job is not one of site {site!r}'s jobs in the server's configuration "
                "(GET /config lists them)")


def _config(request: Request) -> LoadedConfig:
    loaded = settings_of(request).config
    if loaded is None:
        raise HTTPException(503, "this server was started without its configuration: "
                                 "agents are not served")
    return loaded


def agent_caller(request: Request) -> AgentIdentity:
    """The agent a request comes from; 401 for a missing, unknown or revoked token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "an agent token is needed (Authorization: Bearer ...)",
                            headers=_UNAUTHORIZED)
    settings = settings_of(request)
    with settings.sessions() as session, session.begin():
        agent = registry.agent_of(session, token.strip(), settings.now())
    if agent is None:
        raise HTTPException(401, "unknown or revoked agent token", headers=_UNAUTHORIZED)
    return agent


Agent = Annotated[AgentIdentity, Depends(agent_caller)]


def _site_jobs(request: Request, agent: AgentIdentity) -> frozenset[tuple[str, str]]:
    jobs = _config(request).site_jobs(agent.site)
    if jobs is None:
        raise HTTPException(403, f"site {agent.site!r} is no longer in the server's "
                                 "configuration")
    return jobs


@router.post("/enroll", response_model=EnrollOut)
def enroll(request: Request, body: EnrollIn) -> EnrollOut:
    """Spend a single-use enrollment token (``hvbackup agent token``) for an agent token."""
    settings = settings_of(request)
    _config(request)
    try:
        agent, token = registry.enroll(settings.sessions, body.token, body.name, body.version,
                                       settings.now())
    except registry.EnrollmentRefused:
        raise HTTPException(401, "enrollment token unknown, already used or expired: ask "
                                 "for a new one ('hvbackup agent token --site SITE' on the "
                                 "server)") from None
    except UsageError as exc:
        raise HTTPException(409, exc.message) from None
    return EnrollOut(agent_token=token, site=agent.site, name=agent.name)


@router.get("/config", response_model=ConfigOut)
def get_config(request: Request, agent: Agent) -> ConfigOut:
    """The agent's site's part of the configuration (config/sitepart.py), and since when the
    server expects each of its jobs."""
    jobs = _site_jobs(request, agent)
    with settings_of(request).sessions() as session:
        since = jobs_expected_since(session)
        recorded = last_scheduled_runs(session, jobs)
        # The site's clients only (an agent asks every minute; the catalogue is every
        # client's restore points).
        known = [KnownSnapshot(client=c, job=j, snapshot_id=row.snapshot_id, baie=row.baie,
                               taken_at=_utc(row.taken_at),
                               forgotten=row.forgotten_at is not None)
                 for row, c, j in session.execute(
                     select(SnapshotRow, ClientRow.key, JobRow.key)
                     .join(JobRow, SnapshotRow.job_id == JobRow.id)
                     .join(ClientRow, JobRow.client_id == ClientRow.id)
                     .where(ClientRow.key.in_({c for c, _j in jobs}))
                     .order_by(SnapshotRow.id)) if (c, j) in jobs]
    expected = {}
    for key, when in since.items():
        if key not in jobs:
            continue
        # A slot the history has a run for is not expected again: an agent that replaced a
        # revoked one, or whose state folder was put back from an old copy, does not run (and
        # write to the baie) what the server already has.
        last = recorded.get(key)
        if last is not None and _utc(last) >= _utc(when):
            when = last + _JUST_AFTER
        expected[f"{key[0]}/{key[1]}"] = _utc(when)
    return ConfigOut(site=agent.site, config=_config(request).site_part(agent.site),
                     expected_since=expected, snapshots=known)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@router.get("/writer-keys", response_model=WriterKeysOut)
def get_writer_keys(request: Request, agent: Agent) -> WriterKeysOut:
    """The writer keys of the clients with a host on the agent's site, made here when a
    client has none yet (never any other client's)."""
    jobs = _site_jobs(request, agent)
    loaded = _config(request)
    clients = sorted({client for client, _job in jobs})
    keys = {}
    for client in clients:
        secret = load_or_create_writer_secret(loaded.writer_key(client), create=True)
        keys[client] = base64.b64encode(secret).decode()
    return WriterKeysOut(keys=keys)


@router.post("/runs", response_model=RunOut)
def post_run(request: Request, agent: Agent, body: RunIn) -> RunOut:
    """A finished run of one of the site's jobs. Delivering the same uid again answers 200
    with ``recorded: false`` and writes nothing."""
    jobs = _site_jobs(request, agent)
    if (body.client, body.job) in jobs and body.snapshots:
        client = _config(request).config.clients[body.client]
        copies = set(client.jobs[body.job].copies or client.copies or [])
        strays = sorted({s.baie for s in body.snapshots} - copies)
        if strays:
            raise HTTPException(422, f"restore points on {', '.join(strays)}, not a baie this "
                                     "job copies to in the server's configuration")
    try:
        settings = settings_of(request)
        recorded = delivery.record_delivered(settings.sessions, agent, jobs, body,
                                             settings.now())
    except delivery.NotOnSite:
        raise HTTPException(403, _NOT_ON_SITE.format(site=agent.site)) from None
    except delivery.DeliveryConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return RunOut(uid=body.uid, recorded=recorded)


@router.get("/run-requests", response_model=list[RunRequestOut])
def get_run_requests(request: Request, agent: Agent) -> list[RunRequestOut]:
    """The site's run-now requests not started yet, oldest first."""
    jobs = _site_jobs(request, agent)
    with settings_of(request).sessions() as session:
        return delivery.pending_requests(session, jobs)


@router.post("/heartbeat", response_model=HeartbeatOut)
def post_heartbeat(request: Request, agent: Agent, body: HeartbeatIn) -> HeartbeatOut:
    """The agent is alive: its version and what it is running."""
    jobs = _site_jobs(request, agent)
    for running in body.running:
        if (running.client, running.job) not in jobs:
            raise HTTPException(403, _NOT_ON_SITE.format(site=agent.site))
    settings = settings_of(request)
    now = settings.now()
    with settings.sessions() as session, session.begin():
        registry.heartbeat(session, agent, body.version,
                           [r.model_dump(mode="json") for r in body.running],
                           body.queued_runs, now)
    return HeartbeatOut(site=agent.site, server_time=now)
