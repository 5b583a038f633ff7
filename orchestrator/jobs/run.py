"""One run of a job, end to end: capture -> repository -> second copy -> history. Never raises.

Status, as clients and the hotline read it:
* ECHEC — no restorable point for at least one object (VM, database, folder), or the run could
  not happen at all; the error code and a sentence say what to check;
* AVERTISSEMENT — finished, but something needs a look: crash-consistent fallback, a checkpoint
  not merged, a second copy that failed;
* REUSSIE — everything done.
Every step and log line is in the history; the run record is closed whatever happens.
"""

from __future__ import annotations

import fnmatch
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.open import open_target
from orchestrator.capture import Exposed
from orchestrator.capture.files import shadow_copy
from orchestrator.capture.sql import native_backups
from orchestrator.capture.vm import VmCapture, checkpoint
from orchestrator.clock import Clock
from orchestrator.config.load import JobRef, LoadedConfig
from orchestrator.config.models import FilesJob, HypervVmJob, SqlServerJob
from orchestrator.errors import HvbError, ScriptFailed
from orchestrator.history.models import RunStatus, SnapshotRow
from orchestrator.history.recorder import RunRecorder, StepFigures
from orchestrator.hosts import open_host
from orchestrator.hosts.session import HostSession
from orchestrator.jobs.copy import copy_repository, parity
from orchestrator.jobs.offboard import offboarded
from orchestrator.jobs.quota import check_before_run, measure_and_judge
from orchestrator.jobs.retention import apply_retention
from orchestrator.jobs.selfbackup import stage, unstage
from orchestrator.jobs.sources import source_for
from orchestrator.mover.source import Source
from orchestrator.report.hotline import record_run_alert
from orchestrator.report.sanity import WINDOW, Flag, RunFigures, check
from orchestrator.store.backup import Backup, BackupStats
from orchestrator.store.locks import Lock
from orchestrator.store.open import open_for_writing

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    uid: str
    status: str
    error_code: str | None = None
    error_message: str | None = None
    consistency: str | None = None
    warnings: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # object, code, message
    snapshot: str | None = None
    figures: StepFigures = field(default_factory=StepFigures)
    flags: list[Flag] = field(default_factory=list)  # INHABITUELLE, status unchanged


@dataclass
class RunContext:
    loaded: LoadedConfig
    clock: Clock
    sessions: sessionmaker[Session]
    sleep: Callable[[float], None] = time.sleep
    host_factory: Callable[[LoadedConfig, str, Clock], HostSession] = open_host
    progress: Callable[[BackupStats], None] | None = None  # a terminal's progress line


def new_run_uid(when: datetime) -> str:
    return f"{when:%Y%m%d%H%M}-{secrets.token_hex(3)}"


def run_job(ctx: RunContext, ref: JobRef, *, scheduled_for: datetime | None = None,
            trigger: str = "manual") -> RunResult:
    """Run ``ref``; record everything; return the outcome. Raises only
    :class:`~orchestrator.history.recorder.RunAlreadyClaimed` (nothing was done then)."""
    now = ctx.clock.now()
    scheduled = scheduled_for or now
    uid = new_run_uid(scheduled)
    recorder = RunRecorder(ctx.sessions, ctx.clock.now)
    window = timedelta(hours=ref.job.window_hours)
    recorder.start(ref.client_name, ref.job_name, uid, scheduled, window, trigger)
    result = RunResult(uid, RunStatus.ECHEC.value)
    recorder.event("INFO", f"run {uid} of {ref.label} ({ref.job.type}) started ({trigger})")
    try:
        _run(ctx, ref, uid, recorder, result, deadline=scheduled + window)
    except HvbError as exc:
        result.error_code, result.error_message = exc.code, exc.message
        recorder.event("ERROR", exc.message)
    except Exception as exc:  # a bug must still close the run, visibly
        log.exception("run %s of %s failed", uid, ref.label)
        result.error_code = "HVB-INTERNAL"
        result.error_message = f"internal error ({type(exc).__name__}: {exc}); please report it"
        recorder.event("ERROR", result.error_message)
    result.status = _status(result)
    if result.status == RunStatus.ECHEC.value and not result.error_code and result.failures:
        obj, code, message = result.failures[0]
        result.error_code, result.error_message = code, f"{obj}: {message}"
    if result.status == RunStatus.AVERTISSEMENT.value and not result.error_message:
        result.error_message = "; ".join(result.warnings)  # what to look at, in the history
    if result.status != RunStatus.ECHEC.value and result.figures.bytes_read is not None:
        result.flags = _sanity(ctx, ref, uid, result, now)
    recorder.finish(result.status, consistency=result.consistency, figures=result.figures,
                    error_code=result.error_code, error_message=result.error_message,
                    flags=[{"figure": f.figure, "reason": f.reason} for f in result.flags])
    for flag in result.flags:
        recorder.event("WARNING", f"INHABITUELLE: {flag.reason}")
    record_run_alert(ctx.sessions, uid, ctx.clock.now())
    recorder.event("INFO", f"run {uid} finished: {result.status}")
    return result


def _sanity(ctx: RunContext, ref: JobRef, uid: str, result: RunResult,
            started: datetime) -> list[Flag]:
    """Tonight's figures against the job's last successful runs (see report/sanity.py)."""
    from sqlalchemy import select

    from orchestrator.history.models import ClientRow, JobRow, RunRow

    with ctx.sessions() as session:
        rows = session.execute(
            select(RunRow.scheduled_for, RunRow.bytes_read, RunRow.files, RunRow.bytes_new,
                   RunRow.duration_s).join(JobRow).join(ClientRow)
            .where(ClientRow.key == ref.client_name, JobRow.key == ref.job_name,
                   RunRow.status.in_([RunStatus.REUSSIE.value, RunStatus.AVERTISSEMENT.value]),
                   RunRow.uid != uid, RunRow.bytes_read.is_not(None))
            .order_by(RunRow.scheduled_for.desc()).limit(2 * WINDOW)).all()
    history = [RunFigures(when, read or 0, files or 0, new or 0, duration or 0.0)
               for when, read, files, new, duration in reversed(rows)]
    figures = result.figures
    tonight = RunFigures(started, figures.bytes_read or 0, figures.files or 0,
                         figures.bytes_new or 0, (ctx.clock.now() - started).total_seconds())
    return check(tonight, history, ctx.loaded.config.msp.timezone,
                 ctx.loaded.language_of(ref.client))


def _status(result: RunResult) -> str:
    if (result.error_code and not result.snapshot) or result.failures:
        return RunStatus.ECHEC.value
    if result.error_code or result.warnings:
        return RunStatus.AVERTISSEMENT.value
    return RunStatus.REUSSIE.value


def _retrying(ctx: RunContext, ref: JobRef, recorder: RunRecorder, what: str,
              deadline: datetime, attempt: Callable[[], Any]) -> Any:
    """``attempt`` again after retryable failures, ``retries`` times, only inside the window."""
    delay = 60.0
    for number in range(ref.job.retries + 1):
        try:
            return attempt()
        except HvbError as exc:
            retryable = not exc.permanent or (isinstance(exc, ScriptFailed)
                                              and exc.script_code == "GUEST_VSS_FAILED")
            late = ctx.clock.now() + timedelta(seconds=delay) > deadline
            if not retryable or number == ref.job.retries or late:
                if late and retryable and number < ref.job.retries:
                    exc.message += " (fenêtre dépassée: no time left in the window to retry)"
                raise
            recorder.event("WARNING", f"{what}: {exc.message}; retry {number + 1}/"
                           f"{ref.job.retries} in {delay:.0f} s")
            ctx.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _run(ctx: RunContext, ref: JobRef, uid: str, recorder: RunRecorder, result: RunResult,
         deadline: datetime) -> None:
    loaded, job = ctx.loaded, ref.job
    copies = loaded.copies_of(ref.client, job)
    host_label = f"{ref.client_name}/{job.host}"
    host_cfg = ref.client.hosts[job.host]
    ended = offboarded(ctx.sessions, ref.client_name,
                       ctx.clock.now().astimezone(loaded.config.msp.timezone).date())
    if ended:
        raise HvbError(f"the contract of {ref.client_name} ended on {ended:%d/%m/%Y}: its "
                       "backups have stopped")
    check_before_run(ctx.sessions, loaded, ref.client_name, ctx.clock.now())
    host = ctx.host_factory(loaded, host_label, ctx.clock)
    try:
        source = source_for(loaded, ref.client_name, job.host, host)
        if isinstance(job, HypervVmJob):
            with recorder.step("sweep leftovers", host_label):
                host.run("Clear-HvbLeftovers", VMName=list(job.vms), KeepRunId=uid,
                         SkipShadowCopies=True)
        elif isinstance(job, FilesJob) and host_cfg.transport != "local":
            with recorder.step("sweep leftovers", host_label):
                host.run("Clear-HvbLeftovers", KeepRunId=uid, SkipCheckpoints=True)
        repo = open_for_writing(loaded, ref.client_name, copies[0], sleep=ctx.sleep)
        try:
            with Lock(repo.target, "shared", f"backup {ref.label} run {uid}").acquire():
                repo.sync_index()
                backup = Backup(repo, compression_level=job.compression_level,
                                image_chunk=getattr(job, "image_chunk_kib", 512) * 1024,
                                now=ctx.clock.now, progress=ctx.progress)
                try:
                    _capture_all(ctx, ref, uid, recorder, result, host, source, backup,
                                 host_cfg.staging_dir, deadline)
                    if backup.stats.files == 0 and result.failures:
                        backup.close()
                        return  # nothing at all to commit: every object failed
                    with recorder.step("commit snapshot", copies[0]) as figures:
                        info = backup.commit({"client": ref.client_name, "job": ref.job_name,
                                              "run": uid, "host": job.host})
                        figures.bytes_read = backup.stats.bytes_read
                        figures.bytes_new = backup.stats.bytes_new
                        figures.bytes_sent = backup.stats.bytes_stored
                        figures.files = backup.stats.files
                except BaseException:
                    backup.close()
                    raise
            result.snapshot = info.id
            result.figures = figures
            _catalog(ctx, ref, uid, copies[0], info.id, info.meta)
        finally:
            repo.close()
        for other in copies[1:]:
            try:
                with recorder.step("copy", other) as figures:
                    second = open_target(loaded, other, ref.client_name, sleep=ctx.sleep)
                    try:
                        figures.bytes_sent = copy_repository(repo.target, second)
                        missing = parity(repo.target, second)
                    finally:
                        second.close()
                    figures.details = {"parity": not missing, "missing": missing[:20]}
                if missing:
                    result.warnings.append(f"copy {other} lacks {len(missing)} restore point(s) "
                                           "of the first copy")
                _catalog(ctx, ref, uid, other, info.id, info.meta)
            except HvbError as exc:
                result.warnings.append(f"second copy on {other} failed: {exc.message}")
        try:
            with recorder.step("retention", ref.job.retention.policy().describe()) as figures:
                decisions = apply_retention(loaded, ref, ctx.sessions, ctx.clock.now(),
                                            sleep=ctx.sleep)
                figures.details = {"kept": sum(d.keep for d in decisions),
                                   "forgotten": sum(not d.keep for d in decisions)}
        except HvbError as exc:
            result.warnings.append(f"retention could not be applied: {exc.message}")
        try:
            state = measure_and_judge(ctx.sessions, loaded, ref.client_name, copies,
                                      ctx.clock.now())
            if state.status in ("over", "warning"):
                recorder.event("WARNING", f"{ref.client_name} is over its subscribed volume "
                               f"({state.percent:.0f} %)")
        except HvbError as exc:
            recorder.event("WARNING", f"the volume used could not be measured: {exc.message}")
    finally:
        host.close()


def _capture_all(ctx: RunContext, ref: JobRef, uid: str, recorder: RunRecorder,
                 result: RunResult, host: HostSession, source: Source, backup: Backup,
                 staging: str, deadline: datetime) -> None:
    job = ref.job
    if isinstance(job, HypervVmJob):
        consistencies = []
        allow_crash = job.consistency == "application-or-crash"
        for vm in job.vms:
            try:
                with ExitStack() as stack:

                    def take(stack: ExitStack = stack, vm: str = vm) -> VmCapture:
                        return stack.enter_context(checkpoint(
                            host, recorder, vm, uid, allow_crash=allow_crash, mode=job.mode,
                            staging=staging))

                    capture: VmCapture = _retrying(ctx, ref, recorder, vm, deadline, take)
                    consistencies.append(capture.consistency)
                    _read(recorder, source, backup, capture.exposed, None)
                result.warnings.extend(capture.warnings)
            except HvbError as exc:
                result.failures.append((vm, getattr(exc, "script_code", exc.code), exc.message))
        result.consistency = "crash" if "crash" in consistencies else (
            "application" if consistencies else None)
    elif isinstance(job, SqlServerJob):
        with native_backups(host, recorder, job, uid, staging) as dumps:
            result.failures.extend(dumps.failures)
            _read(recorder, source, backup, dumps.exposed, None)
        result.consistency = "application"
    elif isinstance(job, FilesJob):
        on_windows = ref.client.hosts[job.host].transport != "local"
        use_vss = job.vss if job.vss is not None else on_windows
        patterns = list(job.exclude)

        def skip(name: str) -> bool:
            base = name.replace("\\", "/").rsplit("/", 1)[-1]
            return any(fnmatch.fnmatch(base, p) for p in patterns)

        try:
            if job.prepare == "orchestrator":
                with recorder.step("gather orchestrator files", job.paths[0]) as figures:
                    staged = stage(ctx.loaded, Path(job.paths[0]), ctx.clock.now())
                    figures.files, figures.bytes_read = staged.files, staged.bytes
                    figures.details = {"database": staged.database}
            with shadow_copy(host, recorder, list(job.paths), uid, use_vss) as exposed:
                _read(recorder, source, backup, exposed, skip)
        finally:
            if job.prepare == "orchestrator":  # copies of secrets do not linger on disk
                unstage(Path(job.paths[0]))
        result.consistency = "application" if use_vss else "none"


def _read(recorder: RunRecorder, source: Source, backup: Backup, exposed: list[Exposed],
          skip: Callable[[str], bool] | None) -> None:
    by_object: dict[str, list[Exposed]] = {}
    for item in exposed:
        by_object.setdefault(item.obj, []).append(item)
    for obj, items in by_object.items():
        before = backup.stats.bytes_read, backup.stats.files, backup.stats.bytes_new
        with recorder.step("read", obj) as figures:
            for item in items:
                backup.add_path(source, item.path, shown_as=item.shown_as, skip=skip)
            figures.bytes_read = backup.stats.bytes_read - before[0]
            figures.files = backup.stats.files - before[1]
            figures.bytes_new = backup.stats.bytes_new - before[2]


def _catalog(ctx: RunContext, ref: JobRef, uid: str, baie: str, snapshot_id: str,
             meta: dict[str, Any]) -> None:
    from sqlalchemy import select

    from orchestrator.history.models import ClientRow, JobRow, RunRow

    with ctx.sessions() as session, session.begin():
        job_row = session.scalars(select(JobRow).join(ClientRow).where(
            ClientRow.key == ref.client_name, JobRow.key == ref.job_name)).one()
        run_row = session.scalars(select(RunRow).where(RunRow.uid == uid)).one()
        session.add(SnapshotRow(
            snapshot_id=snapshot_id, baie=baie, client_id=job_row.client_id, job_id=job_row.id,
            run_id=run_row.id, taken_at=datetime.fromisoformat(meta["time"]),
            bytes_total=meta["bytes"], files=meta["files"], objects=[]))

