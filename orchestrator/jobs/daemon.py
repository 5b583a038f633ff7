"""The scheduler daemon (``hvbackup run``, and ``hvbackup nights`` on a simulated clock).

Every tick (30 s, driven by the ``schedule`` library):
* runs left 'running' by a stopped orchestrator are closed (the watchdog);
* the night (``night.py``): due runs are claimed and started, late if the orchestrator was
  down; those whose window passed are recorded NON EXECUTEE; "run now" requests start;
  the jobs of a site that has its own agent (``site:``, docs/agents.md) are left to it: the
  agent runs them and delivers them, this scheduler only records them NON EXECUTEE when
  nothing arrived by the end of their window; an agent silent past its site's
  ``heartbeat_minutes`` is an alert (``agent/silence.py``);
  at most ``max_workers`` runs at once, and one run at a time per host;
* after 11:00 (MSP time), once a day, maintenance (``maintenance.py``) in the background;
* the morning (``morning.py``): from 07:00 the clients' reports of the night and the
  hotline's summary, once (the history says which went out; a scheduler that was down over
  a morning sends them late); at every tick the reports late past their deadline, and the
  alerts.
Several schedulers may share one PostgreSQL history (for availability): only the leader
(``leader.py``: an advisory lock) ticks as above; the others are followers, which beat and try
every second to take the lead, and take over when the leader dies. On SQLite every scheduler
leads, as before.
SIGTERM: no new run is started, running ones finish, then the daemon exits. SIGHUP: the
configuration is read again at the next cycle; runs in progress keep the one they started with,
and a broken file is reported and ignored (the previous configuration stays). After each tick
that went through, the scheduler is marked seen in the history (the dashboard says when it was
last seen); after each cycle the heartbeat URL, when configured, is pinged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime
from typing import Protocol

import schedule
from sqlalchemy import select

from orchestrator.agent.silence import silent_agents
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import HvbError
from orchestrator.history.models import AuditRow
from orchestrator.history.sync import sync_config
from orchestrator.jobs import maintenance, morning, night
from orchestrator.jobs.context import RunContext, close_interrupted_runs
from orchestrator.jobs.heartbeat import ping, record_beat
from orchestrator.jobs.leader import Leadership, leadership_for
from orchestrator.jobs.night import Due
from orchestrator.jobs.run import Claim, RunResult

log = logging.getLogger(__name__)


class Listener(Protocol):
    """What a daemon tells whoever watches it (``hvbackup nights`` prints it). Called from the
    daemon's threads."""

    def finished(self, due: Due, result: RunResult) -> None: ...
    def missed(self, due: Due) -> None: ...
    def told(self, when: datetime, told: morning.Told) -> None: ...
    def maintained(self, when: datetime, done: maintenance.Maintained) -> None: ...


class Daemon:
    def __init__(self, ctx: RunContext, max_workers: int = 2,
                 listener: Listener | None = None,
                 reload: Callable[[], LoadedConfig] | None = None,
                 leadership: Leadership | None = None) -> None:
        self.ctx = ctx
        self.leadership = leadership or leadership_for(ctx.sessions.kw.get("bind"))
        self.leading: bool | None = None  # not known before the first tick
        self._reload = reload
        self._reload_asked = threading.Event()
        self.max_workers = max_workers
        self.listener = listener
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="run")
        self._running: dict[str, Future[object]] = {}  # host label (or "maintenance") -> task
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._maintained: date | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = ctx.clock.now()

    # -- one tick ---------------------------------------------------------------------------

    def tick(self) -> list[Due]:
        """Start what is due, record what was missed, tell and maintain when it is time;
        returns the runs started. A follower (another scheduler leads) only beats."""
        now = self.ctx.clock.now()
        if not self._lead():
            record_beat(self.ctx.sessions, self.name, self.started_at, now, leading=False)
            return []
        with self._lock:
            self._running = {h: f for h, f in self._running.items() if not f.done()}
        for uid in close_interrupted_runs(self.ctx.sessions, now):
            log.warning("run %s never finished (its process is gone or its window passed long "
                        "ago): closed as ECHEC", uid)
        started = []
        for due in night.expected(self.ctx, now):
            if self.stopping.is_set():
                break
            if now > due.window_end:
                if night.record_not_run(self.ctx, due, now) and self.listener:
                    self.listener.missed(due)
                continue
            if night.agent_runs(due.ref):
                continue  # its site's agent runs it; NON EXECUTEE above if it never delivers
            if not self._free(due.host):
                continue  # its turn comes at a later tick
            # Claimed here, before the morning below builds any report: a run started at this
            # tick is told in progress, never missing.
            claim = night.claim_due(self.ctx, due)
            if claim is not None and self._start(due.host, self._run, due, replace(self.ctx),
                                                 claim):
                started.append(due)
        self._requested(now)
        self._silent_agents(now)
        self._maintenance(now)
        self._morning(now)
        record_beat(self.ctx.sessions, self.name, self.started_at, now)
        return started

    def _lead(self) -> bool:
        """Whether this scheduler leads now (taking the lead when it is free); logged when
        that changes."""
        leading = self.leadership.lead()
        if leading != self.leading:
            if leading:
                log.warning("scheduler %s leads: it plans the runs, the reports and the "
                            "maintenance", self.name)
            else:
                log.warning("scheduler %s follows: another scheduler leads (it takes over "
                            "if that one stops)", self.name)
            self.leading = leading
        return leading

    def _free(self, host: str) -> bool:
        """Whether a run on ``host`` could start now (only this thread starts runs)."""
        with self._lock:
            return host not in self._running and len(self._running) < self.max_workers

    def _start(self, host: str, task: Callable[..., object], *args: object) -> bool:
        """Run ``task`` in the pool unless its host is busy or every worker is (its turn comes
        at a later tick)."""
        with self._lock:
            if host in self._running or len(self._running) >= self.max_workers:
                return False
            self._running[host] = self._pool.submit(task, *args)
            return True

    def _run(self, due: Due, ctx: RunContext, claim: Claim | None = None) -> None:
        result = night.run_due(ctx, due, claim)
        if result is not None and self.listener:
            self.listener.finished(due, result)

    def _requested(self, now: datetime) -> None:
        """"Run now" asked from the dashboard: started like a scheduled run, one per host."""
        for request in night.requests(self.ctx):
            if self.stopping.is_set():
                return
            ref = next((r for r in self.ctx.loaded.jobs()
                        if (r.client_name, r.job_name) == (request.client, request.job)), None)
            if ref is None:
                if night.take_request(self.ctx, request, now):
                    log.warning("run requested by %s for %s/%s: that job is no longer in the "
                                "configuration", request.by, request.client, request.job)
                continue
            if night.agent_runs(ref):
                continue  # its site's agent reads it (GET /api/agent/v1/run-requests)
            host = f"{ref.client_name}/{ref.job.host}"
            with self._lock:
                if host in self._running or len(self._running) >= self.max_workers:
                    continue  # its host is busy: the next tick
                if not night.take_request(self.ctx, request, now):
                    continue  # another scheduler took it
                log.info("%s: run requested by %s from the dashboard", ref.label, request.by)
                self._running[host] = self._pool.submit(night.run_requested, replace(self.ctx),
                                                        ref, request)

    def _silent_agents(self, now: datetime) -> None:
        """Agents silent past their site's heartbeat_minutes: an alert each (told below)."""
        for name in silent_agents(self.ctx.loaded, self.ctx.sessions, now):
            if name.startswith("site:"):
                log.warning("site %s has jobs and no agent enrolled: the hotline is alerted",
                            name.removeprefix("site:"))
            else:
                log.warning("site agent %s gives no news: the hotline is alerted", name)

    def _morning(self, now: datetime) -> None:
        try:
            told = morning.tell(self.ctx, now)
        except HvbError as exc:  # the next tick tries again; the outbox has the messages
            log.warning("reports: %s", exc)
            return
        if self.listener and (told.digests or told.missing or told.alerts):
            self.listener.told(now, told)

    def _maintenance(self, now: datetime) -> None:
        """Once a day after 11:00 (MSP time), in the background."""
        local = now.astimezone(self.ctx.loaded.config.msp.timezone)
        if local.hour < maintenance.MAINTENANCE_HOUR or self._maintained == local.date():
            return
        with self._lock:
            if "maintenance" in self._running:
                return
            self._maintained = local.date()
            if not self._claim_maintenance(local.date(), now):
                return  # another scheduler (the leader before this one) did it today
            self._running["maintenance"] = self._pool.submit(self._maintain, now)

    def _claim_maintenance(self, day: date, now: datetime) -> bool:
        """The day's maintenance, recorded in the history before it starts (audit
        ``maintenance.day``): a scheduler that takes the lead later that day does not run it
        again. False when it is already recorded."""
        with self.ctx.sessions() as session, session.begin():
            done = session.scalars(select(AuditRow.id).where(
                AuditRow.action == "maintenance.day", AuditRow.target == day.isoformat())
            ).first()
            if done is not None:
                return False
            session.add(AuditRow(at=now, actor=f"scheduler {self.name}"[:200],
                                 action="maintenance.day", target=day.isoformat()))
        return True

    def _maintain(self, now: datetime) -> None:
        done = maintenance.maintain(self.ctx, now)
        if self.listener:
            self.listener.maintained(now, done)

    # -- the loop ---------------------------------------------------------------------------

    def wait_idle(self) -> None:
        """Wait for every run and maintenance in progress (raising what a task raised)."""
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
        if url and (self.leading or not ok):  # a follower plans nothing: its beat would lie
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
        closed = close_interrupted_runs(self.ctx.sessions, self.ctx.clock.now())
        for uid in closed:
            log.warning("run %s was interrupted and is now closed as ECHEC", uid)
        runner = schedule.Scheduler()
        runner.every(interval_s).seconds.do(self.cycle)
        self.cycle()
        while not self.stopping.is_set():
            if self._reload_asked.is_set():
                self.cycle()  # a reload is not left waiting for the next 30 s
            elif not self.leading and self.leadership.lead():
                self.cycle()  # the leader is gone: take over now, not at the next 30 s
            runner.run_pending()
            self.stopping.wait(1.0)
        log.info("stopping: waiting for the runs in progress")
        self.wait_idle()
        self._pool.shutdown(wait=True)
        self.leadership.release()

    def stop(self) -> None:
        self.stopping.set()
