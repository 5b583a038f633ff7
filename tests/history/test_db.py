"""The history schema: created and migrated by Alembic on SQLite and PostgreSQL, in step with
the models, safe to upgrade twice or concurrently."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from orchestrator.errors import HistoryError, SchemaOutOfDate
from orchestrator.history.db import (
    current_revision,
    head_revision,
    open_engine,
    require_current,
    session_factory,
    upgrade,
)
from orchestrator.history.models import (
    AuditRow,
    Base,
    ClientRow,
    JobRow,
    RunEventRow,
    RunRow,
    RunStatus,
)

TABLES = {"clients", "jobs", "runs", "run_steps", "run_events", "snapshots", "alerts", "emails",
          "acknowledgements", "users", "audit_log", "baie_usage", "api_tokens", "run_requests",
          "web_sessions", "quota_tier_moves", "schedulers", "agents", "agent_enrollments",
          "alembic_version"}


def test_upgrade_creates_schema_then_is_a_no_op(db_url: str) -> None:
    engine = open_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head_revision())
    assert set(inspect(engine).get_table_names()) == TABLES
    assert upgrade(engine) == (head_revision(), head_revision())
    require_current(engine)
    engine.dispose()


def test_migrations_match_the_models(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    engine.dispose()
    assert diff == [], "models changed without a migration: write one in history/migrations"


def test_schema_missing_is_a_clear_error(db_url: str) -> None:
    engine = open_engine(db_url)
    with pytest.raises(SchemaOutOfDate, match="has no schema yet: run 'hvbackup db upgrade"):
        require_current(engine)
    engine.dispose()


def _job(session) -> JobRow:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 23, tzinfo=UTC)
    client = ClientRow(key="acme", name="ACME", created_at=now, updated_at=now)
    job = JobRow(client=client, key="erp", type="hyperv-vm", host="hv01", schedule="daily 22:00",
                 window_hours=8, created_at=now, updated_at=now)
    session.add(job)
    session.flush()
    return job


def test_a_run_is_claimed_once_and_keeps_times_in_utc(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    due = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    with sessions() as session, session.begin():
        job = _job(session)
        session.add(RunRow(uid="r1", job_id=job.id, scheduled_for=due,
                           started_at=due + timedelta(minutes=1)))
    with sessions() as session:
        run = session.scalars(select(RunRow)).one()
        assert run.scheduled_for == due and run.scheduled_for.tzinfo is not None
        assert run.sanity_flags == []
        # A second scheduler claiming the same run is refused by the database itself.
        session.add(RunRow(uid="r2", job_id=run.job_id, scheduled_for=due))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_run_status_and_events_round_trip(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    paris_time = datetime(2026, 11, 23, 22, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris"))
    with sessions() as session, session.begin():
        job = _job(session)
        run = RunRow(uid="r1", job_id=job.id, scheduled_for=paris_time, state="finished",
                     status=RunStatus.NON_EXECUTEE.value, sanity_flags=[{"kind": "volume"}],
                     bytes_read=3 * 10**12)
        session.add(run)
        session.flush()
        session.add(RunEventRow(run_id=run.id, at=paris_time, level="ERROR", message="é" * 5000))
    with sessions() as session:
        run = session.scalars(select(RunRow)).one()
        assert run.status == "NON EXECUTEE"
        assert run.scheduled_for == paris_time and run.scheduled_for.utcoffset() == timedelta(0)
        assert run.bytes_read == 3 * 10**12
        assert run.sanity_flags == [{"kind": "volume"}]
        assert session.scalar(select(func.length(RunEventRow.message))) == 5000
    engine.dispose()


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    upgrade(engine)
    with session_factory(engine)() as session:
        session.add(AuditRow(at=datetime(2026, 1, 1), actor="x", action="y"))
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()
    engine.dispose()


def test_concurrent_upgrades_on_postgresql(postgres_url: str) -> None:
    """Two `db upgrade` started at once (two workers sharing one database) both succeed."""
    code = ("import sys; from orchestrator.history.db import open_engine, upgrade; "
            "upgrade(open_engine(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    failures = [p.stderr.read() for p in procs if p.wait(timeout=120) != 0]  # type: ignore[union-attr]
    assert failures == []
    engine = open_engine(postgres_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_unreachable_database_hides_password() -> None:
    engine = open_engine("postgresql+psycopg://hvb:TOPSECRET@127.0.0.1:1/nothing")
    with pytest.raises(HistoryError) as info:
        upgrade(engine)
    assert "TOPSECRET" not in str(info.value)
    assert "postgresql+psycopg://hvb:***@127.0.0.1:1/nothing" in str(info.value)
    assert info.value.permanent is False


def test_invalid_url_is_a_clear_error() -> None:
    with pytest.raises(HistoryError, match=r"database URL .* is not valid"):
        open_engine("not a url")


def test_upgrade_from_the_first_revision_keeps_the_data(db_url: str) -> None:
    from alembic import command

    from orchestrator.history.db import _alembic_config

    engine = open_engine(db_url)
    with _alembic_config(engine) as (cfg, _conn):
        command.upgrade(cfg, "0001")
    assert current_revision(engine) == "0001"
    created = "2026-11-23 00:00:00"
    with engine.begin() as conn:  # the tables as revision 0001 made them, not today's models
        conn.execute(text("INSERT INTO clients (key, name, language, active, created_at, "
                          "updated_at) VALUES ('acme', 'ACME', 'fr', true, :t, :t)"),
                     {"t": created})
        conn.execute(text("INSERT INTO jobs (client_id, key, type, host, schedule, "
                          "window_hours, objects, copies, active, created_at, updated_at) "
                          "SELECT id, 'erp', 'hyperv-vm', 'hv01', 'daily 22:00', 8, '[]', '[]', "
                          "true, :t, :t FROM clients"), {"t": created})
    assert upgrade(engine) == ("0001", head_revision())
    with session_factory(engine)() as session:
        [job] = session.scalars(select(JobRow))
        assert job.key == "erp"
        assert job.expected_since == job.created_at  # a job's schedule is expected from its start
    assert "baie_usage" in inspect(engine).get_table_names()
    engine.dispose()
