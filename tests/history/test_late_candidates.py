"""The dashboard reads only the jobs that may be late (``late_by``): the same late jobs, with
the same missed runs, as judging every job, on SQLite and PostgreSQL, around a DST change."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.history.db import open_engine, session_factory, upgrade
from orchestrator.history.models import ClientRow, JobRow, RunRow, RunStatus
from orchestrator.history.queries import schedule_kinds, schedules_and_last_runs
from orchestrator.schedule.late import due_edges, of_jobs
from orchestrator.schedule.spec import parse_schedule, runs_between

PARIS = ZoneInfo("Europe/Paris")
SCHEDULES = ["daily 22:00", "daily 02:30", "weekdays 21:00", "sun 03:00", "mon,thu 23:45"]
WINDOWS = [2.0, 8.0, 30.0]
START = datetime(2026, 10, 18, tzinfo=UTC)  # a week before the clocks go back (25 October)


def _history(db_url: str, seed: int):  # type: ignore[no-untyped-def]
    """Forty jobs of every schedule and window, created at various times, each run on some of
    its instants (a scheduler down now and then) up to a random last night."""
    rng = random.Random(seed)
    engine = open_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        client = ClientRow(key="acme", name="ACME", created_at=START, updated_at=START)
        for n in range(40):
            text = rng.choice(SCHEDULES)
            created = START + timedelta(hours=rng.randrange(0, 24 * 12))
            job = JobRow(client=client, key=f"job{n}", type="files", host="hv",
                         schedule=text, window_hours=rng.choice(WINDOWS), created_at=created,
                         updated_at=created, expected_since=created)
            session.add(job)
            session.flush()
            stop = START + timedelta(days=rng.randrange(3, 16))
            for instant in runs_between(parse_schedule(text), PARIS, created, stop):
                if rng.random() < 0.8:
                    session.add(RunRow(uid=f"r{n}-{instant:%Y%m%d%H%M}", job_id=job.id,
                                       scheduled_for=instant, status=RunStatus.REUSSIE.value,
                                       started_at=instant, finished_at=instant))
    return engine, sessions


def test_the_jobs_read_as_maybe_late_are_all_the_late_ones(db_url: str) -> None:
    engine, sessions = _history(db_url, seed=7)
    judged = 0
    with sessions() as session:
        every = schedules_and_last_runs(session)
        kinds = schedule_kinds(session)
        now = START
        while now < START + timedelta(days=18):
            late = {job: found for job, found in of_jobs(every, PARIS, now).items()
                    if found.late}
            rows = schedules_and_last_runs(session, late_by=due_edges(kinds, PARIS, now))
            assert {job: found for job, found in of_jobs(rows, PARIS, now).items()
                    if found.late} == late, f"at {now:%Y-%m-%d %H:%M} UTC"
            judged += len(late)
            now += timedelta(minutes=97)  # every hour of the day, over the days
    engine.dispose()
    assert judged > 100  # late jobs were met, not only jobs on time
