"""The scheduler daemon (``hvbackup run``): the history database is the truth.

Every tick (30 s, driven by the ``schedule`` library) it looks at each job's scheduled
instants over the last 36 hours:
* a run not yet in the history whose window is still open is claimed (atomically: the database
  refuses a second claim, so two daemons started by mistake never run a job twice) and started,
  late if the orchestrator was down;
* one whose window has passed without a run is recorded NON EXECUTEE, with the reason;
* at most ``max_workers`` runs at once, and one run at a time per host.
SIGTERM: no new run is started, running ones finish, then the daemon exits. SIGHUP: the
configuration is read again at the next cycle; runs in progress keep the one they started with,
and a broken file is reported and ignored (the previous configuration stays). After each cycle
the heartbeat URL, when configured, is pinged. Runs left 'running' by a crash are closed as
ECHEC at start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import schedule
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.config.load import JobRef, LoadedConfig
from orchestrator.errors import HvbError
from orchestrator.history.models import (
    AlertRow,
    ClientRow,
    JobRow,
    RunEventRow,
    RunRequestRow,
    RunRow,
    RunState,
)
from orchestrator.history.recorder import RunAlreadyClaimed, close_interrupted
from orchestrator.history.sync import sync_config
from orchestrator.jobs.offboard import destroy_due, offboarded
from orchestrator.jobs.run import RunContext, RunResult, new_run_uid, run_job
from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import missing_digests, send_alerts, send_summary
from orchestrator.schedule.heartbeat import ping
from orchestrator.schedule.spec import runs_between

log = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=36)
MAINTENANCE_HOUR = 11
REPORT_HOUR = 7  # the clients' reports of the night, MSP time


@dataclass(frozen=True)
class Due:
    ref: JobRef
    scheduled_for: datetime

    @property
    def window_end(self) -> datetime:
        return self.scheduled_for + timedelta(hours=self.ref.job.window_hours)


def due_runs(refs: list[JobRef], tz: ZoneInfo, since: datetime, now: datetime) -> list[Due]:
    """Scheduled instants in ``(since, now]`` of every enabled job, oldest first (pure)."""
    out = []
    for ref in refs:
        if ref.job.enabled:
            out += [Due(ref, t) for t in runs_between(ref.job.schedule, tz, since, now)]
    return sorted(out, key=lambda d: (d.scheduled_for, d.ref.label))


class Daemon:
    def __init__(self, ctx: RunContext, max_workers: int = 2,
                 on_result: Callable[[Due, RunResult], None] | None = None,
                 reload: Callable[[], LoadedConfig] | None = None) -> None:
        self.ctx = ctx
        self._reload = reload
        self._reload_asked = threading.Event()
        self.max_workers = max_workers
        self.on_result = on_result
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="run")
        self._running: dict[str, Future[None]] = {}  # host label -> run
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._maintained: date | None = None
        self._reported: date | None = None

    # -- one tick ---------------------------------------------------------------------------

    def tick(self) -> list[Due]:
        """Start what is due, record what was missed; returns the runs started."""
        now = self.ctx.clock.now()
        loaded = self.ctx.loaded
        started = []
        with self._lock:
            self._running = {h: f for h, f in self._running.items() if not f.done()}
        for uid in close_interrupted(self.ctx.sessions, now):  # the watchdog
            log.warning("run %s never finished (its process is gone or its window passed long "
                        "ago): closed as ECHEC", uid)
        created = self._created()
        today = now.astimezone(loaded.config.msp.timezone).date()
        ended = {c for c in loaded.config.clients if offboarded(self.ctx.sessions, c, today)}
        for due in due_runs(list(loaded.jobs()), loaded.config.msp.timezone, now - LOOKBACK,
                            now):
            if self.stopping.is_set():
                break
            if due.scheduled_for < created.get((due.ref.client_name, due.ref.job_name), now):
                continue  # scheduled before the job existed: nothing was expected
            if due.ref.client_name in ended:
                continue  # contract ended: nothing expected either
            if self._exists(due):
                continue
            if now > due.window_end:
                self._not_run(due, now)
                continue
            host = f"{due.ref.client_name}/{due.ref.job.host}"
            with self._lock:
                if host in self._running or len(self._running) >= self.max_workers:
                    continue  # its turn comes at a later tick, inside its window
                self._running[host] = self._pool.submit(self._run, due, replace(self.ctx))
            started.append(due)
        self._requested(now)
        self._maintenance(now)
        self._tell(now)
        return started

    def _requested(self, now: datetime) -> None:
        """"Run now" asked from the dashboard: started like a scheduled run, one per host."""
        with self.ctx.sessions() as session:
            pending = session.execute(
                select(RunRequestRow.id, ClientRow.key, JobRow.key, RunRequestRow.requested_by)
                .join(JobRow, RunRequestRow.job_id == JobRow.id).join(ClientRow)
                .where(RunRequestRow.started_at.is_(None)).order_by(RunRequestRow.id)).all()
        for request_id, client, job, who in pending:
            if self.stopping.is_set():
                return
            ref = next((r for r in self.ctx.loaded.jobs()
                        if (r.client_name, r.job_name) == (client, job)), None)
            host = f"{client}/{ref.job.host}" if ref else ""
            with self._lock:
                if ref is not None and (host in self._running
                                        or len(self._running) >= self.max_workers):
                    continue  # its host is busy: the next tick
                if not self._take_request(request_id, now):
                    continue  # another scheduler took it
                if ref is None:
                    log.warning("run requested by %s for %s/%s: that job is no longer in the "
                                "configuration", who, client, job)
                    continue
                log.info("%s: run requested by %s from the dashboard", ref.label, who)
                self._running[host] = self._pool.submit(self._run_requested, ref, request_id,
                                                        replace(self.ctx))

    def _take_request(self, request_id: int, now: datetime) -> bool:
        with self.ctx.sessions() as session, session.begin():
            taken = session.execute(update(RunRequestRow).where(
                RunRequestRow.id == request_id, RunRequestRow.started_at.is_(None)).values(
                started_at=now))
            return bool(taken.rowcount)  # type: ignore[attr-defined]

    def _run_requested(self, ref: JobRef, request_id: int, ctx: RunContext) -> None:
        try:
            result = run_job(ctx, ref, trigger="dashboard")
        except RunAlreadyClaimed:
            return
        with self.ctx.sessions() as session, session.begin():
            session.get_one(RunRequestRow, request_id).run_uid = result.uid
        log.info("%s: %s (run now)", ref.label, result.status)

    def _tell(self, now: datetime) -> None:
        """Alerts as they come (grouped per tick); each morning the clients' reports and the
        hotline's summary; after the deadline, reports that did not go out."""
        loaded = self.ctx.loaded
        send_it = loaded.config.smtp is not None
        local = now.astimezone(loaded.config.msp.timezone)
        night = local.date() - timedelta(days=1)
        try:
            if local.hour >= REPORT_HOUR and self._reported != night:
                self._reported = night
                for client in loaded.config.clients:
                    if loaded.config.clients[client].jobs:
                        send_digest(loaded, self.ctx.sessions, client, night, now,
                                    send_it=send_it)
                send_summary(loaded, self.ctx.sessions, night, now, send_it=send_it)
            missing_digests(loaded, self.ctx.sessions, night, now)
            send_alerts(loaded, self.ctx.sessions, now, send_it=send_it)
        except HvbError as exc:  # the next tick tries again; the outbox has the messages
            log.warning("reports: %s", exc)

    def _maintenance(self, now: datetime) -> None:
        """Once a day after 11:00 (MSP time): prune every client, destroy what is due."""
        local = now.astimezone(self.ctx.loaded.config.msp.timezone)
        if local.hour < MAINTENANCE_HOUR or self._maintained == local.date():
            return
        with self._lock:
            if "maintenance" in self._running:
                return
            self._maintained = local.date()
            self._running["maintenance"] = self._pool.submit(self._maintain, now)

    def _maintain(self, now: datetime) -> None:
        from orchestrator.cli.prune import prune_client  # the same code as `hvbackup prune`

        loaded = self.ctx.loaded
        today = now.astimezone(loaded.config.msp.timezone).date()
        for client in loaded.config.clients:
            if offboarded(self.ctx.sessions, client, today):
                continue  # nothing more is written for an ended contract
            try:
                prune_client(loaded, client, self.ctx, now, dry_run=False)
            except HvbError as exc:
                log.warning("prune of %s failed: %s", client, exc)
        try:
            for item in destroy_due(loaded, self.ctx.sessions, now, "scheduler"):
                log.warning("contract ended 30 days ago: destroyed %s on %s (%d files)",
                            item.client, item.baie, item.files)
        except HvbError as exc:
            log.warning("destroying ended contracts failed: %s", exc)

    def _created(self) -> dict[tuple[str, str], datetime]:
        with self.ctx.sessions() as session:
            rows = session.execute(select(ClientRow.key, JobRow.key, JobRow.created_at)
                                   .join(ClientRow)).all()
        return {(client, job): created for client, job, created in rows}

    def _exists(self, due: Due) -> bool:
        with self.ctx.sessions() as session:
            return session.scalars(select(RunRow.id).join(JobRow).join(ClientRow).where(
                ClientRow.key == due.ref.client_name, JobRow.key == due.ref.job_name,
                RunRow.scheduled_for == due.scheduled_for)).first() is not None

    def _not_run(self, due: Due, now: datetime) -> None:
        message = (f"NON EXECUTEE: the run scheduled at {due.scheduled_for:%Y-%m-%d %H:%M} UTC "
                   f"did not start before the end of its window ({due.window_end:%H:%M} UTC): "
                   "the orchestrator was stopped or busy, or the job waited for its host")
        try:
            with self.ctx.sessions() as session, session.begin():
                job = session.scalars(select(JobRow).join(ClientRow).where(
                    ClientRow.key == due.ref.client_name,
                    JobRow.key == due.ref.job_name)).one()
                run = RunRow(uid=new_run_uid(due.scheduled_for), job_id=job.id,
                             trigger="schedule", scheduled_for=due.scheduled_for,
                             window_ends_at=due.window_end, state=RunState.FINISHED.value,
                             status="NON EXECUTEE", finished_at=now,
                             error_code="HVB-RUN-MISSED", error_message=message)
                session.add(run)
                session.flush()
                session.add(RunEventRow(run_id=run.id, at=now, level="ERROR", message=message))
                session.add(AlertRow(kind="non_executee", severity="error",
                                     client_id=job.client_id, job_id=job.id, run_id=run.id,
                                     created_at=now, message=message))
            log.warning("%s: %s", due.ref.label, message)
        except IntegrityError:
            pass  # another daemon recorded it first

    def _run(self, due: Due, ctx: RunContext) -> None:
        try:
            result = run_job(ctx, due.ref, scheduled_for=due.scheduled_for,
                             trigger="schedule")
        except RunAlreadyClaimed:
            return
        log.info("%s: %s", due.ref.label, result.status)
        if self.on_result:
            self.on_result(due, result)

    # -- the loop ---------------------------------------------------------------------------

    def wait_idle(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for future in running:
            future.result()

    def cycle(self) -> bool:
        """One scheduler cycle: reload the configuration if asked, tick, ping the heartbeat.
        Never raises: a failed cycle is logged (and pinged as failed); the next one retries."""
        ok = True
        try:
            if self._reload_asked.is_set():
                self._reload_asked.clear()
                self._apply_reload()
            self.tick()
        except Exception as exc:  # the database away, a bug: the daemon must live on
            ok = False
            log.error("scheduler cycle failed: %s", exc, exc_info=not isinstance(exc, HvbError))
        url = self.ctx.loaded.config.msp.heartbeat_url
        if url:
            ping(url, ok)
        return ok

    def ask_reload(self) -> None:
        """SIGHUP: read the configuration again at the next cycle."""
        self._reload_asked.set()

    def _apply_reload(self) -> None:
        if self._reload is None:
            return
        try:
            loaded = self._reload()
            with self.ctx.sessions() as session, session.begin():
                sync_config(session, loaded, self.ctx.clock.now(), "scheduler (SIGHUP)")
        except HvbError as exc:
            log.error("configuration not reloaded, the previous one stays in use: %s", exc)
            return
        self.ctx.loaded = loaded
        log.warning("configuration reloaded from %s: %d job(s)", loaded.path,
                    sum(1 for _ in loaded.jobs()))

    def serve(self, interval_s: int = 30) -> None:
        closed = close_interrupted(self.ctx.sessions, self.ctx.clock.now())
        for uid in closed:
            log.warning("run %s was interrupted and is now closed as ECHEC", uid)
        runner = schedule.Scheduler()
        runner.every(interval_s).seconds.do(self.cycle)
        self.cycle()
        while not self.stopping.is_set():
            if self._reload_asked.is_set():
                self.cycle()  # a reload is not left waiting for the next 30 s
            runner.run_pending()
            self.stopping.wait(1.0)
        log.info("stopping: waiting for the runs in progress")
        self.wait_idle()
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self.stopping.set()

