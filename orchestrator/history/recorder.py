"""Recording one run in the history as it happens: the run, its steps, its log lines.

Each step and each log line is committed at once, so a run killed at any moment leaves in the
history everything it did until then (and stays 'running' until the next start closes it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import procs
from orchestrator.errors import HostUnreachable, HvbError
from orchestrator.findings import Finding, Interrupted, Missed, headline, status_of
from orchestrator.history.models import RunEventRow, RunRow, RunState, RunStepRow
from orchestrator.history.queries import known_job

log = logging.getLogger(__name__)

CONNECT_STEP = "connect"  # the step a run records when its host cannot be reached


class RunAlreadyClaimed(HvbError):
    code = "HVB-RUN-CLAIMED"
    permanent = False


class JobAlreadyRunning(RunAlreadyClaimed):
    """Another run of the same job is in progress (a second `hvbackup backup`, a run now during
    the scheduled run): two runs of one job would sweep each other's checkpoints."""

    code = "HVB-JOB-RUNNING"


@dataclass
class StepFigures:
    bytes_read: int | None = None
    bytes_new: int | None = None
    bytes_sent: int | None = None
    files: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class RunRecorder:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._now = now
        self.run_id: int | None = None
        self._seq = 0

    def start(self, client: str, job: str, uid: str, scheduled_for: datetime,
              window: timedelta, trigger: str) -> int:
        """Claim the run (unique per job and scheduled time) and mark it running. Raises
        :class:`RunAlreadyClaimed` when that run exists already (another scheduler, a rerun)."""
        try:
            return self._start(client, job, uid, scheduled_for, window, trigger)
        except IntegrityError:
            raise RunAlreadyClaimed(f"the {scheduled_for:%Y-%m-%d %H:%M} UTC run of {client}/{job} "
                                    "is already in the history") from None

    def _start(self, client: str, job: str, uid: str, scheduled_for: datetime,
               window: timedelta, trigger: str) -> int:
        with self._sessions() as session, session.begin():
            job_row = known_job(session, client, job)
            now = self._now()
            busy = _running_run_of(session, job_row.id, now)
            if busy is not None:
                raise JobAlreadyRunning(
                    f"{client}/{job} is already running: run {busy.uid}, started "
                    f"{busy.started_at:%Y-%m-%d %H:%M} UTC by {busy.claimed_by}; wait for it to "
                    "end (a second run would remove the first one's checkpoints)")
            row = RunRow(uid=uid, job_id=job_row.id, trigger=trigger, scheduled_for=scheduled_for,
                         window_ends_at=scheduled_for + window, state=RunState.RUNNING.value,
                         claimed_by=f"{socket.gethostname()}:{os.getpid()}", started_at=now,
                         heartbeat_at=now)
            session.add(row)
            session.flush()
            self.run_id = row.id
        return row.id

    def event(self, level: str, message: str, step_id: int | None = None) -> None:
        # Recorded in the history and reported: the log only repeats it at INFO (-v).
        log.info("%s: %s", level, message)
        with self._sessions() as session, session.begin():
            session.add(RunEventRow(run_id=self.run_id, step_id=step_id, at=self._now(),
                                    level=level, message=message))

    @contextmanager
    def step(self, name: str, obj: str | None = None) -> Iterator[StepFigures]:
        """Record a step; an HvbError inside marks it failed (and goes on up)."""
        self._seq += 1
        with self._sessions() as session, session.begin():
            row = RunStepRow(run_id=self.run_id, seq=self._seq, name=name, object=obj,
                             status="running", started_at=self._now())
            session.add(row)
            session.flush()
            step_id = row.id
        figures = StepFigures()
        status, code, message = "ok", None, None
        try:
            yield figures
        except HostUnreachable as exc:
            # Whatever this step was to do on the host, what failed is reaching it.
            name = CONNECT_STEP
            status, code, message = "failed", exc.code, exc.message
            raise
        except HvbError as exc:
            status, code, message = "failed", exc.code, exc.message
            raise
        except Exception as exc:
            status, code, message = "failed", "HVB-INTERNAL", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with self._sessions() as session, session.begin():
                row = session.get_one(RunStepRow, step_id)
                row.name = name
                row.status = figures.details.pop("status", status)
                row.finished_at = self._now()
                row.bytes_read, row.bytes_new = figures.bytes_read, figures.bytes_new
                row.bytes_sent, row.files = figures.bytes_sent, figures.files
                row.error_code, row.error_message = code, message
                row.details = figures.details
            if message:
                self.event("ERROR", f"{name}{f' {obj}' if obj else ''}: {message}", step_id)

    def finish(self, *, findings: list[Finding], consistency: str | None,
               figures: StepFigures, flags: list[dict[str, Any]] | None = None) -> None:
        """Close the run: its status is derived from ``findings``, its error code and message
        are those of the finding that sums it up."""
        with self._sessions() as session, session.begin():
            row = session.get_one(RunRow, self.run_id)
            row.sanity_flags = flags or []
            now = self._now()
            row.state = RunState.FINISHED.value
            _close(row, findings)
            row.finished_at = now
            row.duration_s = (now - row.started_at).total_seconds() if row.started_at else None
            row.consistency = consistency
            row.bytes_read, row.bytes_new = figures.bytes_read, figures.bytes_new
            row.bytes_sent, row.files = figures.bytes_sent, figures.files


def _close(row: RunRow, findings: list[Finding]) -> None:
    row.status = status_of(findings).value
    row.findings = [f.to_dict() for f in findings]
    top = headline(findings)
    row.error_code = top.code if top else None
    row.script_code = top.script_code if top else None
    # Every finding, the most serious first: the hotline reads them all in one line.
    ordered = sorted(findings, key=lambda f: f.severity, reverse=True)
    row.error_message = "; ".join(f.headline for f in ordered) if top else None


def record_missed(sessions: sessionmaker[Session], client: str, job: str, uid: str,
                  scheduled_for: datetime, window_end: datetime, now: datetime,
                  finding: Missed) -> bool:
    """Record the run that did not happen (NON EXECUTEE); False when it is there already
    (another scheduler recorded it, or it ran)."""
    try:
        with sessions() as session, session.begin():
            row = RunRow(uid=uid, job_id=known_job(session, client, job).id, trigger="schedule",
                         scheduled_for=scheduled_for, window_ends_at=window_end,
                         state=RunState.FINISHED.value, finished_at=now)
            _close(row, [finding])
            session.add(row)
            session.flush()
            session.add(RunEventRow(run_id=row.id, at=now, level="ERROR",
                                    message=finding.message))
    except IntegrityError:
        return False
    return True


def _running_run_of(session: Session, job_id: int, now: datetime) -> RunRow | None:
    """A run of the job still in progress: its process alive on this machine, or, from
    another machine, within its window (and the hour after it that close_interrupted waits)."""
    here = socket.gethostname()
    for run in session.scalars(select(RunRow).where(RunRow.job_id == job_id,
                                                    RunRow.state == RunState.RUNNING.value)):
        host, _, pid = (run.claimed_by or "").rpartition(":")
        if host == here and pid.isdigit():
            if int(pid) == os.getpid() or procs.pid_alive(int(pid)):
                return run
        elif run.window_ends_at is None or run.window_ends_at + timedelta(hours=1) >= now:
            return run
    return None


def close_interrupted(sessions: sessionmaker[Session], now: datetime,
                      pid_alive: Callable[[int], bool] | None = None) -> list[str]:
    """Close as ECHEC the runs left 'running' by an orchestrator that stopped: on this machine
    when their process is gone, elsewhere when their window ended an hour ago. Returns their
    uids. Run at every start, and by the scheduler's watchdog at every tick."""
    here = socket.gethostname()
    alive = pid_alive or procs.pid_alive
    closed = []
    with sessions() as session, session.begin():
        for run in session.scalars(select(RunRow).where(RunRow.state == RunState.RUNNING.value)):
            host, _, pid = (run.claimed_by or "").rpartition(":")
            if host == here and pid == str(os.getpid()):
                continue  # this very process runs it: it will close it itself
            mine_and_dead = host == here and pid.isdigit() and not alive(int(pid))
            long_gone = run.window_ends_at is not None and \
                run.window_ends_at + timedelta(hours=1) < now
            if not (mine_and_dead or long_gone):
                continue
            run.state = RunState.FINISHED.value
            finding = Interrupted(None, "HVB-RUN-INTERRUPTED", (
                f"the run was interrupted (orchestrator process {run.claimed_by} stopped "
                "during it); the next run cleans what it left on the host"))
            _close(run, [finding])
            run.finished_at = now
            for step in session.scalars(select(RunStepRow).where(
                    RunStepRow.run_id == run.id, RunStepRow.status == "running")):
                step.status, step.finished_at = "failed", now  # it never ended either
                step.error_code, step.error_message = finding.code, "interrupted"
            session.add(RunEventRow(run_id=run.id, at=now, level="ERROR",
                                    message=finding.message))
            closed.append(run.uid)
    return closed
