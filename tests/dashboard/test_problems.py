"""What the hotline sees first: failing jobs worst and oldest first, how long they fail, the
last success, who acknowledged; a client sees only its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.problems import problems
from orchestrator.history.models import AcknowledgementRow, JobRow, RunRow, UserRow
from tests.world import Setup


def test_failing_jobs_first_with_their_history(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: verifyonly-failure, target: PAIE, dates: [2026-11-24, "
                               "2026-11-25]}")
    for _night in range(3):
        for job in ("partages", "compta"):
            s.run(job)
        s.clock.advance(timedelta(days=1))
    found = problems(s.sessions, tz=s.loaded.config.msp.timezone, now=s.clock.now())
    # erp never ran in these three nights: late, though no run of it says so
    assert [(p.job, p.status, p.failures) for p in found] == [("compta", "ECHEC", 2),
                                                              ("erp", "NON EXECUTEE", 3)]
    compta = found[0]
    assert compta.since.date().isoformat() == "2026-11-24"
    assert compta.last_success is not None and compta.last_success.date().isoformat() == \
        "2026-11-23"
    assert compta.message.startswith("PAIE: RESTORE VERIFYONLY of [PAIE] failed")
    assert compta.acknowledged_by is None


def test_acknowledgement_and_client_scope(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    s.run("erp")
    user = add_user(s.sessions, "marie", "a long enough password", "hotline", None, "t",
                    s.clock.now())
    with s.sessions() as session, session.begin():
        run = session.scalars(select(RunRow)).one()
        job = session.get_one(JobRow, run.job_id)
        marie = session.scalars(select(UserRow).where(UserRow.username == "marie")).one()
        session.add(AcknowledgementRow(job_id=job.id, run_id=run.id, user_id=marie.id,
                                       at=s.clock.now(), comment="appelé le client"))
    [problem] = problems(s.sessions, tz=s.loaded.config.msp.timezone, now=s.clock.now())
    assert (problem.acknowledged_by, problem.acknowledged_comment) == ("marie",
                                                                       "appelé le client")
    tz, now = s.loaded.config.msp.timezone, s.clock.now()
    assert problems(s.sessions, tz=tz, now=now, client="acme") == [problem]
    assert problems(s.sessions, tz=tz, now=now, client="someone-else") == []
    assert user.username == "marie"


def test_a_job_failing_for_months_counts_every_failure(tmp_path: Path) -> None:
    """Beyond the two months read at once, the streak is still counted exactly."""
    s = Setup(tmp_path)
    now = s.clock.now()
    with s.sessions() as session, session.begin():
        job = session.scalars(select(JobRow).where(JobRow.key == "erp")).one()
        good_end = now - timedelta(days=100, hours=-1)
        session.add(RunRow(uid="good", job_id=job.id, scheduled_for=now - timedelta(days=100),
                           state="finished", status="REUSSIE", finished_at=good_end))
        for day in range(99, -1, -1):
            when = now - timedelta(days=day)
            session.add(RunRow(uid=f"bad-{day}", job_id=job.id, scheduled_for=when,
                               state="finished", status="ECHEC", finished_at=when,
                               error_message="hv01 does not answer"))
    [problem] = problems(s.sessions, tz=s.loaded.config.msp.timezone, now=s.clock.now())
    assert (problem.job, problem.status, problem.failures) == ("erp", "ECHEC", 100)
    assert problem.since == now - timedelta(days=99)
    assert problem.last_success == good_end
    assert problem.run_uid == "bad-0"


def test_problems_on_sqlite_and_postgresql(db_url: str) -> None:
    """The same answers from both databases (JSON flags and streaks are decided in SQL)."""
    from datetime import UTC, datetime

    from orchestrator.history.db import open_engine, session_factory, upgrade
    from orchestrator.history.models import ClientRow

    engine = open_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    now = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    with sessions() as session, session.begin():
        client = ClientRow(key="acme", name="ACME")
        session.add(client)
        session.flush()
        jobs = {}
        for key in ("fine", "unusual", "down"):
            jobs[key] = JobRow(client_id=client.id, key=key, type="files", host="h",
                               schedule="daily 22:00", window_hours=8, copies=["a"])
            session.add(jobs[key])
        session.flush()
        for day in range(30, -1, -1):
            when = now - timedelta(days=day)
            for key, job in jobs.items():
                bad = key == "down" and day <= 14
                flags = [{"figure": "files", "reason": "3x fewer files"}] if (
                    key == "unusual" and day == 0) else []
                session.add(RunRow(uid=f"{key}-{day}", job_id=job.id, scheduled_for=when,
                                   state="finished", status="ECHEC" if bad else "REUSSIE",
                                   finished_at=when + timedelta(minutes=5),
                                   sanity_flags=flags, error_message="h is down" if bad else None))
    found = {p.job: p for p in problems(sessions, tz=ZoneInfo("Europe/Paris"), now=now)}
    assert set(found) == {"unusual", "down"}
    assert (found["unusual"].status, found["unusual"].failures) == ("INHABITUELLE", 1)
    assert found["unusual"].message == "3x fewer files"
    down = found["down"]
    assert (down.status, down.failures, down.message) == ("ECHEC", 15, "h is down")
    assert down.since == now - timedelta(days=14)
    assert down.last_success == now - timedelta(days=15) + timedelta(minutes=5)
    engine.dispose()
