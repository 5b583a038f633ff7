"""The history database: what ran, what it produced, who was told, who looked.

SQLAlchemy 2 declarative models. The schema itself is created and changed only by the Alembic
migrations in ``migrations/`` (``hvbackup db upgrade``); a test keeps models and migrations in
step. Every timestamp is stored in UTC and comes back timezone-aware.

Nothing here holds a secret: users have argon2 password hashes, never passwords.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Defined beside the findings it is derived from; read here too, where runs are.
from orchestrator.findings import RunStatus as RunStatus


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite has no timezone support)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the history database; pass UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RunState(StrEnum):
    """Where a run is in its life; only a finished run has a status."""

    CLAIMED = "claimed"
    RUNNING = "running"
    FINISHED = "finished"


class Role(StrEnum):
    ADMIN = "admin"
    HOTLINE = "hotline"
    CLIENT = "client"


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON,
    }


def _now() -> datetime:
    return datetime.now(UTC)


class ClientRow(Base):
    """A client of the MSP, as named in the config (``key``)."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5), default="fr")
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    quota_on_overrun: Mapped[str] = mapped_column(String(20), default="block",
                                                  server_default="block")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    offboard_on: Mapped[date | None] = mapped_column(Date)
    destroyed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)

    jobs: Mapped[list[JobRow]] = relationship(back_populates="client")


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    host: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(String(100))
    window_hours: Mapped[float] = mapped_column(Float)
    objects: Mapped[list[Any]] = mapped_column(default=list)
    copies: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
    # Since when its schedule is expected: its creation, or the last change of its schedule,
    # window or enabled state (no run was due before under the schedule it has now).
    expected_since: Mapped[datetime] = mapped_column(default=_now)

    client: Mapped[ClientRow] = relationship(back_populates="jobs")


class RunRow(Base):
    """One run of a job. ``(job_id, scheduled_for)`` is unique: that is how a due run is
    claimed atomically, so two schedulers started by mistake never run a job twice."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_for"),
        Index(None, "job_id", "started_at"),
        Index(None, "status", "finished_at"),
        Index(None, "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")
    scheduled_for: Mapped[datetime]
    window_ends_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(20), default=RunState.CLAIMED.value)
    status: Mapped[str | None] = mapped_column(String(20))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    consistency: Mapped[str | None] = mapped_column(String(20))
    bytes_read: Mapped[int | None] = mapped_column(BigInteger)
    bytes_new: Mapped[int | None] = mapped_column(BigInteger)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger)
    files: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    script_code: Mapped[str | None] = mapped_column(String(60))  # the host script's own code
    findings: Mapped[list[Any]] = mapped_column(default=list)  # findings.Finding.to_dict()
    sanity_flags: Mapped[list[Any]] = mapped_column(default=list)
    # When a run a site agent delivered late replaced the NON EXECUTEE the server had recorded
    # for its slot (the client is then sent a "Complément").
    replaced_at: Mapped[datetime | None]

    job: Mapped[JobRow] = relationship()
    steps: Mapped[list[RunStepRow]] = relationship(
        back_populates="run", order_by="RunStepRow.seq", cascade="all, delete-orphan"
    )


class RunStepRow(Base):
    """A step of a run (sweep, checkpoint of one VM, upload, copy to baie 2, ...)."""

    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    object: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    bytes_read: Mapped[int | None] = mapped_column(BigInteger)
    bytes_new: Mapped[int | None] = mapped_column(BigInteger)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger)
    files: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    run: Mapped[RunRow] = relationship(back_populates="steps")


class RunEventRow(Base):
    """A log line of a run. Kept without time limit (contract)."""

    __tablename__ = "run_events"
    __table_args__ = (Index(None, "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("run_steps.id", ondelete="SET NULL"))
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)


class SnapshotRow(Base):
    """A restore point as catalogued from a baie's repository."""

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("snapshot_id", "baie"), Index(None, "job_id", "taken_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(64))
    baie: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    taken_at: Mapped[datetime]
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    files: Mapped[int | None] = mapped_column(BigInteger)
    objects: Mapped[list[Any]] = mapped_column(default=list)
    forgotten_at: Mapped[datetime | None]
    forget_reason: Mapped[str | None] = mapped_column(Text)


class BaieUsageRow(Base):
    """Bytes a client's repository takes on a baie, measured after each run (quotas)."""

    __tablename__ = "baie_usage"
    __table_args__ = (Index(None, "client_id", "baie", "measured_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    baie: Mapped[str] = mapped_column(String(64))
    measured_at: Mapped[datetime]
    bytes_stored: Mapped[int] = mapped_column(BigInteger)


class QuotaTierMoveRow(Base):
    """A client's subscribed volume moved up to the next tier after its grace period
    (``quota.on_overrun: next_tier``): from ``from_bytes`` to ``to_bytes``, decided at
    ``decided_at``, billed from ``billed_from`` (the first day of the following month)."""

    __tablename__ = "quota_tier_moves"
    __table_args__ = (Index(None, "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    decided_at: Mapped[datetime]
    billed_from: Mapped[date] = mapped_column(Date)
    from_bytes: Mapped[int] = mapped_column(BigInteger)
    to_bytes: Mapped[int] = mapped_column(BigInteger)
    used_bytes: Mapped[int] = mapped_column(BigInteger)


class AlertRow(Base):
    """Something the hotline (and sometimes the client) must be told about."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "resolved_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notified_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class EmailRow(Base):
    """Every message built for sending, whether it went out or not."""

    __tablename__ = "emails"
    __table_args__ = (Index(None, "client_id", "kind", "report_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    report_date: Mapped[date | None] = mapped_column(Date)
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(300))
    outbox_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class AcknowledgementRow(Base):
    """A hotline operator saying "seen, I am on it", with a comment, on a run or an alert."""

    __tablename__ = "acknowledgements"
    __table_args__ = (Index(None, "job_id", "at"), Index(None, "alert_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for an alert that concerns a client, not a job (quota, missing report).
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime]
    comment: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """Every change made by a person or a command (who, what, on what). Never deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiTokenRow(Base):
    """A token for /api/v1 and /metrics, acting as its user (same role, same client scope).
    Only the SHA-256 of the token is kept: it is shown once, when created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class WebSessionRow(Base):
    """A dashboard session. The cookie holds a random token; only its SHA-256 is kept here, so
    ending a row (logout, password change, removed account) ends the session for whoever
    holds a copy of the cookie."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    address: Mapped[str] = mapped_column(String(100))


class RunRequestRow(Base):
    """"Run now", asked from the dashboard; the scheduler starts it at its next tick (one run
    per host still holds) and writes the run's uid here."""

    __tablename__ = "run_requests"
    __table_args__ = (Index(None, "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    run_uid: Mapped[str | None] = mapped_column(String(40))


class SchedulerRow(Base):
    """A scheduler (``hvbackup run``) and when it was last seen: it writes ``seen_at`` after
    every cycle, so the dashboard can say it stopped (nothing else would: a stopped scheduler
    records no NON EXECUTEE). ``leading_since`` is set on the one that plans (the leader,
    jobs/leader.py) and cleared on the others (followers)."""

    __tablename__ = "schedulers"
    __table_args__ = (Index(None, "seen_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # host:pid
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    version: Mapped[str] = mapped_column(String(40))
    leading_since: Mapped[datetime | None]


class AgentRow(Base):
    """A site agent (``hvbackup agent enroll``). Only the SHA-256 of its token is kept: the
    token is given once, at enrollment. A revoked agent is kept (what it delivered stays
    attributed) and refused everywhere. ``running`` is what its last heartbeat said it was
    doing, ``queued_runs`` how many runs its spool still held."""

    __tablename__ = "agents"
    __table_args__ = (Index(None, "site"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    version: Mapped[str | None] = mapped_column(String(40))
    running: Mapped[list[Any]] = mapped_column(default=list)
    queued_runs: Mapped[int] = mapped_column(Integer, default=0)  # not delivered yet
    revoked_at: Mapped[datetime | None]


class AgentEnrollmentRow(Base):
    """A single-use enrollment token for one site (``hvbackup agent token``), kept hashed;
    ``used_at`` and ``agent_id`` say when and by which agent it was spent."""

    __tablename__ = "agent_enrollments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
