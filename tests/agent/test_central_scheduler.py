"""The central scheduler leaves the jobs of an agent's site to the agent: it neither runs them
nor takes their run-now requests, and records them NON EXECUTEE when nothing arrived by the end
of their window (docs/agents.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.history.models import ClientRow, JobRow, RunRequestRow, RunRow
from orchestrator.history.queries import job_row
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.daemon import Daemon
from tests.agent.test_agent_run import central_of


def _runs(ctx: RunContext) -> dict[str, tuple[str, str | None]]:
    with ctx.sessions() as session:
        rows = session.execute(select(JobRow.key, RunRow.state, RunRow.status)
                               .join(JobRow, RunRow.job_id == JobRow.id).join(ClientRow)
                               ).all()
    return {job: (state, status) for job, state, status in rows}


def test_the_central_scheduler_does_not_run_an_agent_sites_job(tmp_path: Path,
                                                               clock: FrozenClock) -> None:
    central = central_of(tmp_path, clock)
    night = FrozenClock(datetime(2026, 11, 23, 21, 5, tzinfo=UTC))
    ctx = RunContext(central.loaded, night, central.sessions)
    with ctx.sessions() as session, session.begin():
        job = job_row(session, "acme", "partages")
        assert job is not None
        session.add(RunRequestRow(job_id=job.id, requested_by="hotline",
                                  requested_at=night.now()))
    daemon = Daemon(ctx, max_workers=2)
    started = daemon.tick()
    daemon.wait_idle()
    assert [d.ref.job_name for d in started] == ["central-files"]
    assert _runs(ctx) == {"central-files": ("finished", "REUSSIE")}
    with ctx.sessions() as session:  # left for the agent to read
        assert session.scalars(select(RunRequestRow.started_at)).one() is None
    assert not any((tmp_path / "baie-acme").rglob("*"))

    night.advance(timedelta(hours=8, minutes=1))  # partages' window (8 h) has passed
    daemon.tick()
    daemon.wait_idle()
    assert _runs(ctx)["partages"] == ("finished", "NON EXECUTEE")
