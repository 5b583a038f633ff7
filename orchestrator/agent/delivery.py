"""Runs delivered by site agents, written into the server's history exactly once.

The run's ``uid`` is the key: a run delivered again (the agent never saw the first answer, or
its spool was restored) is recognised and nothing is written twice. A run is accepted only for
one of the delivering agent's own site's jobs.

A run delivered for a slot the server already recorded NON EXECUTEE (the agent was cut off past
the run's window: the server judged from its schedule, and the client's report said so) is the
truth arriving late: it replaces the missed record (same row, so the alert and anything else
pointing at it stay), ``replaced_at`` says when, and the client's report of that night gets a
"Complément" (report/digest.py ``update_due``). A real run already there is never replaced.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.agent.protocol import RunIn, RunRequestOut
from orchestrator.agent.registry import AgentIdentity
from orchestrator.findings import RunStatus
from orchestrator.history.models import (
    ClientRow,
    JobRow,
    RunEventRow,
    RunRequestRow,
    RunRow,
    RunState,
    RunStepRow,
    SnapshotRow,
)
from orchestrator.report.hotline import add_run_alert


class NotOnSite(Exception):
    """The job is not one of the agent's site's jobs (or does not exist: the same answer)."""


class DeliveryConflict(Exception):
    """The run cannot be recorded as it is; the message says why without naming anything of
    another site."""


def record_delivered(sessions: sessionmaker[Session], agent: AgentIdentity,
                     jobs: Set[tuple[str, str]], run: RunIn, now: datetime) -> bool:
    """Record ``run`` for ``agent``, whose site holds ``jobs``. Returns True when it was
    written, False when that uid was delivered before (idempotent). Raises NotOnSite,
    DeliveryConflict."""
    if (run.client, run.job) not in jobs:
        raise NotOnSite
    try:
        with sessions() as session, session.begin():
            if _delivered_before(session, run):
                return False
            _insert(session, agent, run, now)
            # The hotline is told of a delivered ECHEC as of one run here (an agent killed
            # mid-run delivers its HVB-RUN-INTERRUPTED like any other).
            add_run_alert(session, run.uid, now)
    except IntegrityError:
        with sessions() as session:
            if _delivered_before(session, run):
                return False  # the same run, delivered twice at the same moment
        raise DeliveryConflict(
            f"a run of {run.client}/{run.job} scheduled for {run.scheduled_for:%Y-%m-%d %H:%M} "
            "UTC is already in the history under another uid") from None
    return True


def _delivered_before(session: Session, run: RunIn) -> bool:
    found = session.execute(select(ClientRow.key, JobRow.key).select_from(RunRow)
                            .join(JobRow, RunRow.job_id == JobRow.id)
                            .join(ClientRow, JobRow.client_id == ClientRow.id)
                            .where(RunRow.uid == run.uid)).first()
    if found is None:
        return False
    if tuple(found) != (run.client, run.job):
        raise DeliveryConflict(f"uid {run.uid} is already used by another run")
    return True


def _missed_record(row: Any) -> bool:
    """Whether ``row`` is the NON EXECUTEE the server recorded itself (nothing ran)."""
    return (row.status == RunStatus.NON_EXECUTEE.value and row.started_at is None
            and row.claimed_by is None)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _insert(session: Session, agent: AgentIdentity, run: RunIn, now: datetime) -> None:
    # Core statements on the tables, not the ORM's unit of work: a night of a thousand agents
    # is thousands of these, and the ORM's bookkeeping would be most of the server's work.
    job_id = session.scalar(select(JobRow.id).join(ClientRow).where(
        ClientRow.key == run.client, JobRow.key == run.job))
    if job_id is None:
        raise DeliveryConflict(f"the server's history does not know job {run.client}/{run.job} "
                               "yet: run 'hvbackup db upgrade -c FILE' on the server")
    duration = ((run.finished_at - run.started_at).total_seconds()
                if run.started_at else None)
    values = dict(uid=run.uid, trigger=run.trigger, window_ends_at=run.window_ends_at,
                  state=RunState.FINISHED.value, status=run.status.value,
                  claimed_by=f"agent:{agent.name}"[:200], started_at=run.started_at,
                  finished_at=run.finished_at, duration_s=duration,
                  consistency=run.consistency, bytes_read=run.bytes_read,
                  bytes_new=run.bytes_new, bytes_sent=run.bytes_sent, files=run.files,
                  error_code=run.error_code, error_message=run.error_message,
                  script_code=run.script_code, findings=run.findings,
                  sanity_flags=run.sanity_flags)
    runs = _table(RunRow)
    missed = session.execute(select(runs.c.id, runs.c.status, runs.c.started_at,
                                    runs.c.claimed_by, runs.c.finished_at).where(
        runs.c.job_id == job_id, runs.c.scheduled_for == run.scheduled_for)).first()
    if missed is not None and run.trigger == "schedule" and _missed_record(missed) \
            and run.started_at is not None:
        # Conditional: of two deliveries racing for the slot, one replaces it; the other
        # finds it taken (the same run: recorded already; another: a conflict).
        taken = session.execute(update(runs).where(
            runs.c.id == missed.id, runs.c.started_at.is_(None), runs.c.claimed_by.is_(None))
            .values(**values, replaced_at=now))
        if not taken.rowcount:  # type: ignore[attr-defined]
            raise IntegrityError("runs", None, Exception("slot taken meanwhile"))
        run_id = missed.id
        session.execute(delete(RunEventRow).where(RunEventRow.run_id == run_id))
        recorded_at = missed.finished_at
        session.execute(insert(_table(RunEventRow)).values(
            run_id=run_id, at=now, level="INFO", message=(
                f"delivered late by agent {agent.name}: replaces the NON EXECUTEE the server "
                f"recorded at {recorded_at:%Y-%m-%d %H:%M} UTC" if recorded_at else
                f"delivered late by agent {agent.name}: replaces the NON EXECUTEE the server "
                "recorded")))
    else:
        run_id = session.execute(insert(runs).values(
            job_id=job_id, scheduled_for=run.scheduled_for, **values)
            .returning(runs.c.id)).scalar_one()
    # Steps and log lines in one statement each (round trips per line would be most of the
    # server's work).
    step_ids: dict[int, int] = {}
    if run.steps:
        steps = _table(RunStepRow)
        made = session.execute(insert(steps).returning(steps.c.seq, steps.c.id), [
            {"run_id": run_id, "seq": step.seq, "name": step.name, "object": step.object,
             "status": step.status, "started_at": step.started_at,
             "finished_at": step.finished_at, "bytes_read": step.bytes_read,
             "bytes_new": step.bytes_new, "bytes_sent": step.bytes_sent, "files": step.files,
             "error_code": step.error_code, "error_message": step.error_message,
             "details": step.details} for step in run.steps])
        step_ids = {seq: step_id for seq, step_id in made}
    if run.events:
        session.execute(insert(_table(RunEventRow)), [
            {"run_id": run_id, "at": event.at, "level": event.level, "message": event.message,
             "step_id": step_ids.get(event.step_seq or 0)} for event in run.events])
    if run.snapshots:
        client_id = session.scalar(select(JobRow.client_id).where(JobRow.id == job_id))
        session.execute(insert(_table(SnapshotRow)), [
            {"snapshot_id": snap.snapshot_id, "baie": snap.baie, "client_id": client_id,
             "job_id": job_id, "run_id": run_id, "taken_at": snap.taken_at,
             "bytes_total": snap.bytes_total, "files": snap.files, "objects": []}
            for snap in run.snapshots])
    if run.request_id is not None:
        session.execute(update(RunRequestRow).where(
            RunRequestRow.id == run.request_id, RunRequestRow.job_id == job_id,
            RunRequestRow.started_at.is_(None)).values(
                started_at=run.started_at or run.finished_at, run_uid=run.uid))


def pending_requests(session: Session, jobs: Set[tuple[str, str]]) -> list[RunRequestOut]:
    """The run-now requests not started yet for ``jobs`` (one site's), oldest first."""
    rows = session.execute(
        select(RunRequestRow, ClientRow.key, JobRow.key)
        .join(JobRow, RunRequestRow.job_id == JobRow.id)
        .join(ClientRow, JobRow.client_id == ClientRow.id)
        .where(RunRequestRow.started_at.is_(None))
        .order_by(RunRequestRow.requested_at, RunRequestRow.id)).all()
    return [RunRequestOut(id=r.id, client=c, job=j, requested_by=r.requested_by,
                          requested_at=r.requested_at)
            for r, c, j in rows if (c, j) in jobs]
