"""The server's register of site agents: single-use enrollment tokens, agent tokens, revocation.

Tokens are random, shown once and kept only as their SHA-256. An enrollment token belongs to
one site, expires, and is spent by the first enrollment that presents it (the spending is one
conditional UPDATE, so two agents racing with the same token cannot both win). An agent token
acts for its site only; a revoked agent's token is refused everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.suggest import did_you_mean
from orchestrator.errors import UsageError
from orchestrator.history.models import AgentEnrollmentRow, AgentRow, AuditRow

ENROLLMENT_PREFIX = "hve_"
AGENT_PREFIX = "hva_"
ENROLLMENT_HOURS_MAX = 24 * 7  # a token left lying around a week is a token to throw away
# An agent's "last seen" is rewritten when it is older than this: a night of deliveries would
# otherwise be one more write per request (the heartbeat, every few minutes, always writes).
SEEN_EVERY = timedelta(minutes=1)


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AgentIdentity:
    """Who an agent token is: what every agent route receives."""

    id: int
    site: str
    name: str


@dataclass(frozen=True)
class AgentInfo:
    name: str
    site: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    version: str | None
    queued_runs: int
    revoked_at: datetime | None


class EnrollmentRefused(Exception):
    """The enrollment token is unknown, already used or expired (the three look alike to the
    caller, on purpose)."""


def create_enrollment(sessions: sessionmaker[Session], site: str, hours: float, actor: str,
                      now: datetime) -> tuple[str, datetime]:
    """A new single-use enrollment token for ``site``, valid ``hours``; the only time it is
    shown. Returns it with its expiry. The caller checks that the site exists."""
    if not 0 < hours <= ENROLLMENT_HOURS_MAX:
        raise UsageError(f"--hours must be more than 0 and at most {ENROLLMENT_HOURS_MAX} "
                         f"(got {hours:g})")
    token = ENROLLMENT_PREFIX + secrets.token_urlsafe(32)
    expires = now + timedelta(hours=hours)
    with sessions() as session, session.begin():
        session.add(AgentEnrollmentRow(token_sha256=sha256(token), site=site, created_at=now,
                                       created_by=actor[:200], expires_at=expires))
        session.add(AuditRow(at=now, actor=actor, action="agent.token", target=site,
                             details={"expires_at": expires.isoformat()}))
    return token, expires


def enroll(sessions: sessionmaker[Session], enrollment_token: str, name: str, version: str,
           now: datetime) -> tuple[AgentIdentity, str]:
    """Spend ``enrollment_token`` and register agent ``name`` on its site. Returns the agent
    and its token (shown once). Raises :class:`EnrollmentRefused` when the token is unknown,
    used or expired, :class:`UsageError` when an agent of that name is enrolled and not
    revoked (revoke it first)."""
    token = AGENT_PREFIX + secrets.token_urlsafe(32)
    with sessions() as session, session.begin():
        spent = session.execute(
            update(AgentEnrollmentRow)
            .where(AgentEnrollmentRow.token_sha256 == sha256(enrollment_token),
                   AgentEnrollmentRow.used_at.is_(None), AgentEnrollmentRow.expires_at > now)
            .values(used_at=now).returning(AgentEnrollmentRow.id, AgentEnrollmentRow.site)
        ).first()
        if spent is None:
            raise EnrollmentRefused
        enrollment_id, site = spent
        if _active(session, name) is not None:
            raise UsageError(f"an agent named {name!r} is already enrolled: revoke it first "
                             f"('hvbackup agent revoke {name}') or choose another name")
        serving = session.scalars(select(AgentRow.name).where(
            AgentRow.site == site, AgentRow.revoked_at.is_(None))).first()
        if serving is not None:
            # Two agents of one site would both run its jobs (the host captured twice a night,
            # one of the two runs refused): one agent a site, replaced by revoking it.
            raise UsageError(f"site {site!r} already has an enrolled agent, {serving!r}: "
                             f"revoke it first ('hvbackup agent revoke {serving}' on the "
                             "server) to replace it; the token is not spent")
        row = AgentRow(site=site, name=name, token_sha256=sha256(token), enrolled_at=now,
                       last_seen_at=now, version=version[:40], running=[], queued_runs=0)
        session.add(row)
        session.flush()
        session.execute(update(AgentEnrollmentRow).where(AgentEnrollmentRow.id == enrollment_id)
                        .values(agent_id=row.id))
        session.add(AuditRow(at=now, actor=f"agent:{name}", action="agent.enroll", target=site,
                             details={"version": version[:40]}))
        return AgentIdentity(row.id, site, name), token


def _active(session: Session, name: str) -> AgentRow | None:
    return session.scalars(select(AgentRow).where(AgentRow.name == name,
                                                  AgentRow.revoked_at.is_(None))).first()


def agent_of(session: Session, token: str, now: datetime) -> AgentIdentity | None:
    """The agent a token is, None when it is unknown or revoked; marks the agent seen (to
    the minute)."""
    if not token.startswith(AGENT_PREFIX):
        return None
    row = session.scalars(select(AgentRow).where(AgentRow.token_sha256 == sha256(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    seen = row.last_seen_at
    if seen is None or now - (seen if seen.tzinfo else seen.replace(tzinfo=UTC)) >= SEEN_EVERY:
        row.last_seen_at = now
    return AgentIdentity(row.id, row.site, row.name)


def heartbeat(session: Session, agent: AgentIdentity, version: str, running: list[Any],
              queued_runs: int, now: datetime) -> None:
    session.execute(update(AgentRow).where(AgentRow.id == agent.id).values(
        version=version[:40], running=running, queued_runs=queued_runs, last_seen_at=now))


def revoke(sessions: sessionmaker[Session], name: str, actor: str, now: datetime) -> str:
    """Revoke the enrolled agent ``name``; returns its site. Raises UsageError when no
    agent of that name is enrolled."""
    with sessions() as session, session.begin():
        row = _active(session, name)
        if row is None:
            known = session.scalars(select(AgentRow.name)
                                    .where(AgentRow.revoked_at.is_(None))).all()
            raise UsageError(f"no enrolled agent {name!r}"
                             + did_you_mean(name, known, listed_as="enrolled",
                                            if_none=" (none enrolled)"))
        row.revoked_at = now
        session.add(AuditRow(at=now, actor=actor, action="agent.revoke", target=name,
                             details={"site": row.site}))
        return row.site


def list_agents(sessions: sessionmaker[Session]) -> list[AgentInfo]:
    """Every agent ever enrolled, by site then name; revoked ones included (and said so)."""
    with sessions() as session:
        rows = session.scalars(select(AgentRow).order_by(AgentRow.site, AgentRow.name,
                                                         AgentRow.id)).all()
        return [AgentInfo(r.name, r.site, r.enrolled_at, r.last_seen_at, r.version,
                          r.queued_runs, r.revoked_at) for r in rows]
