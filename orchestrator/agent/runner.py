"""``hvbackup agent run``: the site agent's service (docs/agents.md).

One cycle (every minute, or once with ``--once``):

1. the site's part of the configuration is fetched from the server and kept in the agent's
   state folder (``part.json``); when the server cannot be reached, the part kept last is used,
   so the site's jobs run on their schedule all the same;
2. the part is loaded as a configuration of its own, with the agent's state folder as its
   ``state_dir`` and a local SQLite history (``history.db``) in it: the run machinery of the
   central scheduler (claims, steps, log lines, figures, findings) is reused as it is, and
   secrets (``password_env``, ``password_file``) are read on this machine only; each job
   is expected from when the server expects it (the server says so with the part);
3. the due runs are run, one at a time; a run whose window passed is recorded missed locally
   and not delivered (the server records NON EXECUTEE from the schedule itself);
4. the run-now requests of the server are run (each request once: the spool keeps which);
5. every finished run is queued whole in the spool, then the spool is delivered;
6. a heartbeat tells the server the agent's version, what it runs and what waits.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import __version__
from orchestrator.agent.protocol import (
    EventIn,
    HeartbeatIn,
    KnownSnapshot,
    RunIn,
    RunningJob,
    SnapshotIn,
    StepIn,
)
from orchestrator.agent.server import Server
from orchestrator.agent.spool import Delivery, Spool, deliver
from orchestrator.clock import Clock
from orchestrator.config.load import LoadedConfig, load_config_text
from orchestrator.errors import ConfigError, ServerError, ServerUnreachable, UsageError
from orchestrator.history.db import open_engine, session_factory, upgrade
from orchestrator.history.models import (
    ClientRow,
    JobRow,
    RunEventRow,
    RunRow,
    RunState,
    RunStepRow,
    SnapshotRow,
)
from orchestrator.history.sync import sync_config
from orchestrator.jobs import night
from orchestrator.jobs.context import RunContext, close_interrupted_runs
from orchestrator.jobs.run import run_job
from orchestrator.store.backup import BackupStats
from orchestrator.store.repository import load_or_create_writer_secret, save_writer_secret

log = logging.getLogger(__name__)

PART_FILE = "part.json"
HISTORY_FILE = "history.db"
INTERVAL_S = 60


# -- the site's part ------------------------------------------------------------------------

@dataclass
class Part:
    """The site's part, why the server was not asked (None when it answered), and since when
    the server expects each job (empty when it was not asked: the local history keeps what
    it said last)."""

    config: dict[str, Any]
    offline: str | None
    expected_since: dict[str, datetime] = field(default_factory=dict)
    snapshots: list[KnownSnapshot] = field(default_factory=list)


def fetch_part(server: Server, folder: Path) -> Part:
    """The site's part: from the server (kept then in ``part.json``), else the one kept last."""
    kept = folder / PART_FILE
    try:
        answer = server.config()
    except ServerUnreachable as exc:
        if not kept.exists():
            raise ServerUnreachable(f"{exc.message}; no configuration was ever received "
                                    "from the server (the agent runs nothing until it is)"
                                    ) from None
        return Part(json.loads(kept.read_text(encoding="utf-8")), exc.message)
    tmp = kept.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(answer.config, f, ensure_ascii=False, indent=1)
    tmp.replace(kept)
    return Part(answer.config, None, dict(answer.expected_since), list(answer.snapshots))


def take_writer_keys(server: Server, loaded: LoadedConfig) -> None:
    """Keep the writer keys the server has for the site's clients. A key already here is never
    replaced (a repository was written with it): one that is not the server's is said, as the
    server cannot maintain what it writes."""
    try:
        answer = server.writer_keys()
    except ServerUnreachable as exc:
        log.warning("writer keys not fetched (the ones kept are used): %s", exc.message)
        return
    for client, text in answer.keys.items():
        secret = base64.b64decode(text)
        path = loaded.writer_key(client)
        if path.exists():
            if load_or_create_writer_secret(path, create=False) != secret:
                log.error("%s: the writer key on this agent (%s) is not the server's: the "
                          "server cannot prune what this agent writes until it holds this "
                          "one: on the server, 'hvbackup keys writer-restore -c FILE %s "
                          "--key-file F' (with the client's key) takes the key the repository "
                          "was written with", client, path, client)
            continue
        save_writer_secret(path, secret)


def load_part(part: dict[str, Any], folder: Path) -> LoadedConfig:
    """The part as a configuration of its own: the agent's folder is its state folder (and the
    base of relative paths), its history a SQLite file there."""
    doc = dict(part)
    doc["state_dir"] = str(folder)
    doc["database"] = f"sqlite:///{folder / HISTORY_FILE}"
    doc.setdefault("baies", {})
    try:
        return load_config_text(json.dumps(doc, ensure_ascii=False), str(folder / PART_FILE),
                                base=folder / PART_FILE)
    except ConfigError as exc:
        raise ServerError("the configuration received from the server cannot be used by "
                          f"this agent: {exc.message}") from None


def open_local(loaded: LoadedConfig, clock: Clock, previous: RunContext | None,
               expected_since: dict[str, datetime] | None = None) -> RunContext:
    """The agent's own history (created or upgraded as needed), synced with ``loaded``; each
    job is expected from when the server expects it (``expected_since``, "client/job" ->
    when), not from the agent's first cycle: an agent enrolled at 22:05 still runs the job the
    server awaits at 22:00, and never the nights before the server had the job."""
    sessions = previous.sessions if previous else None
    if sessions is None:
        engine = open_engine(loaded.database_url)
        upgrade(engine)
        sessions = session_factory(engine)
    with sessions() as session, session.begin():
        sync_config(session, loaded, clock.now(), "agent")
        if expected_since:
            for job, client in session.execute(select(JobRow, ClientRow.key).join(ClientRow)):
                when = expected_since.get(f"{client}/{job.key}")
                if when is not None:
                    job.expected_since = when
    return RunContext(loaded, clock, sessions)


def adopt_snapshots(ctx: RunContext, known: list[KnownSnapshot], now: datetime) -> None:
    """The server's catalogue into the agent's: restore points another agent of the site
    wrote (one this agent replaced), or this agent before its state folder was put back, are
    known; those the server's retention let go are forgotten here too. Nothing is removed."""
    if not known:
        return
    with ctx.sessions() as session, session.begin():
        jobs = {(c, j): (job_id, client_id) for job_id, client_id, c, j in session.execute(
            select(JobRow.id, JobRow.client_id, ClientRow.key, JobRow.key).join(ClientRow))}
        have = {(r.snapshot_id, r.baie): r for r in session.scalars(select(SnapshotRow))}
        for point in known:
            row = have.get((point.snapshot_id, point.baie))
            if row is None:
                ids = jobs.get((point.client, point.job))
                if ids is None:
                    continue
                row = SnapshotRow(snapshot_id=point.snapshot_id, baie=point.baie,
                                  client_id=ids[1], job_id=ids[0], run_id=None,
                                  taken_at=point.taken_at, objects=[])
                session.add(row)
                have[(point.snapshot_id, point.baie)] = row
            if point.forgotten and row.forgotten_at is None:
                row.forgotten_at, row.forget_reason = now, "retention on the server"


# -- what the agent runs now (for its heartbeat) --------------------------------------------

@dataclass
class Progress:
    """The runs in progress, as the heartbeat tells them."""

    running: dict[str, RunningJob] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def jobs(self) -> list[RunningJob]:
        with self.lock:
            return list(self.running.values())

    @contextmanager
    def job(self, client: str, job: str) -> Iterator[Callable[[BackupStats], None]]:
        key = f"{client}/{job}"
        with self.lock:
            self.running[key] = RunningJob(client=client, job=job, step="backup")

        def seen(stats: BackupStats) -> None:
            with self.lock:
                self.running[key] = RunningJob(client=client, job=job, step="backup",
                                               done_bytes=stats.bytes_read)

        try:
            yield seen
        finally:
            with self.lock:
                self.running.pop(key, None)


# -- one cycle ------------------------------------------------------------------------------

@dataclass
class Cycle:
    ran: list[str] = field(default_factory=list)  # uids run in this cycle
    status: dict[str, str] = field(default_factory=dict)  # uid -> its status
    offline: str | None = None  # why the server was not reached, when it was not
    delivery: Delivery | None = None


class Agent:
    def __init__(self, folder: Path, server: Server, clock: Clock,
                 simulated_only: bool = False) -> None:
        self.folder = folder
        # A cycle on a simulated clock (``agent run --once --at``) drives simulated hosts only.
        self.simulated_only = simulated_only
        self.server = server
        self.clock = clock
        self.spool = Spool(folder / "spool.db")
        self.ctx: RunContext | None = None
        self.progress = Progress()
        self.stopping = threading.Event()

    def cycle(self) -> Cycle:
        out = Cycle()
        part = fetch_part(self.server, self.folder)
        out.offline = part.offline
        loaded = load_part(part.config, self.folder)
        if self.simulated_only:
            real = [f"{c}/{h}" for c, client in loaded.config.clients.items()
                    for h, host in client.hosts.items() if host.transport != "simulated"]
            if real:
                raise UsageError("a cycle at a chosen time (--at) only drives simulated hosts; "
                                 f"not simulated: {', '.join(real)}")
        if part.offline is None:
            take_writer_keys(self.server, loaded)
        missing = [c for c in loaded.config.clients if not loaded.writer_key(c).exists()]
        if missing:
            raise ServerError(f"the writer key of {', '.join(missing)} was never received from "
                              "the server: its jobs do not run until it is (the server keeps "
                              "every client's writer key and prunes with it)")
        self.ctx = ctx = open_local(loaded, self.clock, self.ctx, part.expected_since)
        adopt_snapshots(ctx, part.snapshots, self.clock.now())
        close_interrupted_runs(ctx.sessions, self.clock.now())
        self._beat(out)
        for due in night.expected(ctx, self.clock.now()):
            if self.stopping.is_set():
                break
            if self.clock.now() > due.window_end:
                night.record_not_run(ctx, due, self.clock.now())
                continue
            with self.progress.job(due.ref.client_name, due.ref.job_name) as seen:
                ctx.progress = seen
                result = night.run_due(ctx, due)
            if result is not None:
                out.ran.append(result.uid)
                out.status[result.uid] = result.status.value
        if out.offline is None:
            self._requests(ctx, out)
        self._queue(ctx)
        if out.offline is None:
            out.delivery = deliver(self.spool, self.server, self.clock.now())
            if out.delivery.unreachable:
                out.offline = out.delivery.unreachable
        self._beat(out)
        return out

    def _requests(self, ctx: RunContext, out: Cycle) -> None:
        """The server's run-now requests for this site, each run once."""
        try:
            asked = self.server.run_requests()
        except ServerUnreachable as exc:
            out.offline = exc.message
            return
        refs = {(r.client_name, r.job_name): r for r in ctx.loaded.jobs()}
        for request in asked:
            if self.stopping.is_set() or self.spool.request_taken(request.id):
                continue
            ref = refs.get((request.client, request.job))
            if ref is None:
                log.warning("run requested for %s/%s: not in this site's configuration",
                            request.client, request.job)
                continue
            log.info("%s: run requested by %s", ref.label, request.requested_by)
            with self.progress.job(ref.client_name, ref.job_name) as seen:
                ctx.progress = seen
                result = run_job(ctx, ref, trigger="dashboard")
            self.spool.take_request(request.id, result.uid, self.clock.now())
            out.ran.append(result.uid)
            out.status[result.uid] = result.status.value

    def _queue(self, ctx: RunContext) -> None:
        """Every finished run of the local history not in the spool yet, queued whole."""
        with ctx.sessions() as session:
            uids = session.scalars(select(RunRow.uid).where(
                RunRow.state == RunState.FINISHED.value,
                RunRow.started_at.is_not(None))).all()
            queued = self.spool.uids()
            for uid in uids:
                if uid in queued:
                    continue
                run = run_payload(session, uid, self.spool.request_of(uid))
                self.spool.add(run, self.clock.now())

    def _beat(self, out: Cycle) -> None:
        if out.offline is not None:
            return
        beat = HeartbeatIn(version=__version__, running=self.progress.jobs(),
                           queued_runs=len(self.spool.waiting()))
        try:
            self.server.heartbeat(beat)
        except ServerUnreachable as exc:
            out.offline = exc.message

    def heartbeat_now(self) -> None:
        """A heartbeat between cycles (a long run in progress); silent when offline."""
        self._beat(Cycle())

    def serve(self, interval_s: int = INTERVAL_S,
              report: Callable[[Cycle], None] | None = None) -> None:
        """Cycle every ``interval_s`` until :meth:`stop`; a failed cycle is logged and the
        next one retries. While a run lasts, a heartbeat goes every ``interval_s``."""
        beating = threading.Thread(target=self._beating, args=(interval_s,), daemon=True)
        beating.start()
        while not self.stopping.is_set():
            try:
                done = self.cycle()
                if report:
                    report(done)
            except ServerError as exc:
                log.error("agent cycle: %s", exc.message)
            except Exception as exc:  # the agent must live on; the next cycle retries
                log.error("agent cycle failed: %s", exc, exc_info=True)
            self.stopping.wait(interval_s)

    def _beating(self, interval_s: int) -> None:
        while not self.stopping.wait(interval_s):
            if self.progress.jobs():
                try:
                    self.heartbeat_now()
                except ServerError as exc:
                    log.warning("heartbeat: %s", exc.message)

    def stop(self) -> None:
        """SIGTERM: no new run starts; the run in progress finishes, is queued and sent."""
        self.stopping.set()


# -- a finished run as the server receives it -----------------------------------------------

def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_payload(session: Session, uid: str, request_id: int | None = None) -> RunIn:
    """Run ``uid`` of the local history, whole: its row, steps, log lines and figures."""
    run, client, job = session.execute(
        select(RunRow, ClientRow.key, JobRow.key).join(JobRow, RunRow.job_id == JobRow.id)
        .join(ClientRow, JobRow.client_id == ClientRow.id).where(RunRow.uid == uid)).one()
    steps = session.scalars(select(RunStepRow).where(RunStepRow.run_id == run.id)
                            .order_by(RunStepRow.seq)).all()
    seq_of = {s.id: s.seq for s in steps}
    events = session.scalars(select(RunEventRow).where(RunEventRow.run_id == run.id)
                             .order_by(RunEventRow.id)).all()
    snapshots = session.scalars(select(SnapshotRow).where(SnapshotRow.run_id == run.id)
                                .order_by(SnapshotRow.id)).all()
    trigger = run.trigger if run.trigger in ("schedule", "manual", "dashboard") else "manual"
    finished = _aware(run.finished_at) or _aware(run.started_at)
    return RunIn(
        uid=run.uid, client=client, job=job, trigger=trigger,
        request_id=request_id,
        scheduled_for=_aware(run.scheduled_for), window_ends_at=_aware(run.window_ends_at),
        started_at=_aware(run.started_at), finished_at=finished,
        status=run.status,
        consistency=run.consistency, bytes_read=run.bytes_read, bytes_new=run.bytes_new,
        bytes_sent=run.bytes_sent, files=run.files, error_code=run.error_code,
        error_message=run.error_message, script_code=run.script_code,
        findings=list(run.findings or []), sanity_flags=list(run.sanity_flags or []),
        steps=[StepIn(seq=s.seq, name=s.name, object=s.object, status=s.status,
                      started_at=_aware(s.started_at), finished_at=_aware(s.finished_at),
                      bytes_read=s.bytes_read, bytes_new=s.bytes_new, bytes_sent=s.bytes_sent,
                      files=s.files, error_code=s.error_code, error_message=s.error_message,
                      details=dict(s.details or {}))
               for s in steps],
        events=[EventIn(at=_aware(e.at), level=e.level, message=e.message,
                        step_seq=seq_of.get(e.step_id) if e.step_id else None)
                for e in events],
        snapshots=[SnapshotIn(snapshot_id=s.snapshot_id, baie=s.baie,
                              taken_at=_aware(s.taken_at), bytes_total=s.bytes_total,
                              files=s.files) for s in snapshots])

