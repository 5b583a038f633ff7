"""One run of a job, end to end: capture -> repository -> second copy -> history. Never raises.

What the run finds is kept as typed findings (``orchestrator/findings.py``); its status, as
clients and the hotline read it, is derived from them:
* ECHEC — no restorable point for at least one object (VM, database, folder), or the run could
  not happen at all; the error code and a sentence say what to check;
* AVERTISSEMENT — finished, but something needs a look: crash-consistent fallback, a checkpoint
  not merged, a second copy that failed, files found damaged or missing on the baie (the point
  is whole: it did not count on them);
* REUSSIE — everything done.
Every step and log line is in the history; the run record is closed whatever happens.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from orchestrator.baie.canary import probe
from orchestrator.baie.open import open_target
from orchestrator.baie.target import Target, is_append_only
from orchestrator.capture import Exposed
from orchestrator.capture.files import excluded, files_unreadable, shadow_copy, uses_vss
from orchestrator.capture.selfbackup import gathered
from orchestrator.capture.sql import native_backups
from orchestrator.capture.vm import VmCapture, allows_crash, checkpoint, consistency_of
from orchestrator.config.load import JobRef
from orchestrator.config.models import AnyJob, FilesJob, HypervVmJob, SqlServerJob
from orchestrator.errors import HvbError
from orchestrator.findings import (
    BaieDamaged,
    BaieUnprotected,
    CopyFailed,
    CopyIncomplete,
    Finding,
    ObjectFailed,
    RetentionFailed,
    RunFailed,
    RunStatus,
    StoppedAfterSnapshot,
    headline,
    status_of,
)
from orchestrator.history.models import ClientRow, JobRow, RunRow, SnapshotRow
from orchestrator.history.queries import known_job, recent_figures, run_by_uid
from orchestrator.history.recorder import RunRecorder, StepFigures
from orchestrator.hosts.open import open_host
from orchestrator.hosts.session import HostSession
from orchestrator.jobs import rollback
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.copy import copy_repository, parity
from orchestrator.jobs.offboard import offboarded
from orchestrator.jobs.quota import check_before_run, measure_and_judge
from orchestrator.jobs.retention import apply_retention
from orchestrator.mover.open import open_source
from orchestrator.mover.source import Source
from orchestrator.report.hotline import record_run_alert
from orchestrator.report.sanity import WINDOW, Flag, RunFigures, check
from orchestrator.store.backup import Backup, backing_up
from orchestrator.store.open import open_for_writing
from orchestrator.store.repository import Repository, SnapshotInfo

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunResult:
    uid: str
    findings: list[Finding] = field(default_factory=list)
    consistency: str | None = None
    snapshot: str | None = None
    figures: StepFigures = field(default_factory=StepFigures)
    flags: list[Flag] = field(default_factory=list)  # INHABITUELLE, status unchanged

    @property
    def status(self) -> RunStatus:
        return status_of(self.findings)

    @property
    def headline(self) -> Finding | None:
        """The finding that sums the run up (its first failure, else its first warning)."""
        return headline(self.findings)


def new_run_uid(when: datetime) -> str:
    return f"{when:%Y%m%d%H%M}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Claim:
    """A run claimed in the history (it shows in progress from then on), not yet done."""

    uid: str
    scheduled_for: datetime
    trigger: str
    recorder: RunRecorder


def claim_run(ctx: RunContext, ref: JobRef, *, scheduled_for: datetime | None = None,
              trigger: str = "manual") -> Claim:
    """Claim the run of ``ref`` at ``scheduled_for`` (now by default). Raises
    :class:`~orchestrator.history.recorder.RunAlreadyClaimed` (another scheduler has it)."""
    scheduled = scheduled_for or ctx.clock.now()
    uid = new_run_uid(scheduled)
    recorder = RunRecorder(ctx.sessions, ctx.clock.now)
    recorder.start(ref.client_name, ref.job_name, uid, scheduled,
                   timedelta(hours=ref.job.window_hours), trigger)
    return Claim(uid, scheduled, trigger, recorder)


def run_job(ctx: RunContext, ref: JobRef, *, scheduled_for: datetime | None = None,
            trigger: str = "manual", claim: Claim | None = None) -> RunResult:
    """Run ``ref`` (claiming it first unless ``claim`` is given); record everything; return
    the outcome. Raises only :class:`~orchestrator.history.recorder.RunAlreadyClaimed`
    (nothing was done then)."""
    now = ctx.clock.now()
    if claim is None:
        claim = claim_run(ctx, ref, scheduled_for=scheduled_for, trigger=trigger)
    uid, scheduled, trigger, recorder = (claim.uid, claim.scheduled_for, claim.trigger,
                                         claim.recorder)
    window = timedelta(hours=ref.job.window_hours)
    result = RunResult(uid)
    recorder.event("INFO", f"run {uid} of {ref.label} ({ref.job.type}) started ({trigger})")
    try:
        _run(ctx, ref, uid, recorder, result, deadline=scheduled + window)
    except HvbError as exc:
        kind = RunFailed if result.snapshot is None else StoppedAfterSnapshot
        result.findings.append(kind.of(exc))
        recorder.event("ERROR", exc.message)
    except Exception as exc:  # a bug must still close the run, visibly
        log.exception("run %s of %s failed", uid, ref.label)
        kind = RunFailed if result.snapshot is None else StoppedAfterSnapshot
        result.findings.append(kind(None, "HVB-INTERNAL", f"internal error "
                                    f"({type(exc).__name__}: {exc}); please report it"))
        recorder.event("ERROR", result.findings[-1].message)
    if result.status != RunStatus.ECHEC and result.figures.bytes_read is not None:
        result.flags = _sanity(ctx, ref, uid, result, now)
    recorder.finish(findings=result.findings, consistency=result.consistency,
                    figures=result.figures,
                    flags=[{"figure": f.figure, "reason": f.reason} for f in result.flags])
    for flag in result.flags:
        recorder.event("WARNING", f"INHABITUELLE: {flag.reason}")
    record_run_alert(ctx.sessions, uid, ctx.clock.now())
    recorder.event("INFO", f"run {uid} finished: {result.status}")
    return result


def _sanity(ctx: RunContext, ref: JobRef, uid: str, result: RunResult,
            started: datetime) -> list[Flag]:
    """Tonight's figures against the job's last successful runs (see report/sanity.py)."""
    with ctx.sessions() as session:
        rows = recent_figures(session, ref.client_name, ref.job_name, before_uid=uid,
                              limit=2 * WINDOW)
    history = [RunFigures(when, read or 0, files or 0, new or 0, duration or 0.0)
               for when, read, files, new, duration in rows]
    figures = result.figures
    tonight = RunFigures(started, figures.bytes_read or 0, figures.files or 0,
                         figures.bytes_new or 0, (ctx.clock.now() - started).total_seconds())
    return check(tonight, history, ctx.loaded.config.msp.timezone,
                 ctx.loaded.language_of(ref.client))


def _retrying(ctx: RunContext, ref: JobRef, recorder: RunRecorder, what: str,
              deadline: datetime, attempt: Callable[[], T]) -> T:
    """``attempt`` again after a retryable error (``HvbError.permanent`` is False: the error
    tree and, for host scripts, ``hosts/scripts.RETRYABLE_CODES`` decide), ``retries`` times,
    with a doubling delay, only while the window leaves time for it."""
    delay = 60.0
    for number in range(ref.job.retries + 1):
        try:
            return attempt()
        except HvbError as exc:
            late = ctx.clock.now() + timedelta(seconds=delay) > deadline
            if exc.permanent or number == ref.job.retries or late:
                if late and not exc.permanent and number < ref.job.retries:
                    exc.message += " (fenêtre dépassée: no time left in the window to retry)"
                raise
            recorder.event("WARNING", f"{what}: {exc.message}; retry {number + 1}/"
                           f"{ref.job.retries} in {delay:.0f} s")
            ctx.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")



def _copy(ctx: RunContext, ref: JobRef, uid: str, recorder: RunRecorder, result: RunResult,
          repo: Repository, other: str, info: SnapshotInfo) -> None:
    """Copy to ``other`` what it lacks, then compare the two baies by content. It is opened
    afresh (the backup may have lasted hours since the checks before it used it)."""
    try:
        with recorder.step("copy", other) as figures:
            second = open_target(ctx.loaded.baie(other, ref.client_name), sleep=ctx.sleep)
            try:
                figures.bytes_sent = copy_repository(repo.target, second)

                def running() -> set[str]:  # their points reach it with their own copy
                    with ctx.sessions() as session:
                        return rollback.others_in_progress(session, ref.client_name, uid)

                compared = parity(repo, second, in_progress=running)
            finally:
                second.close()
            figures.details = {"parity": compared.identical,
                               "missing": compared.problems()[:20]}
        if not compared.identical:
            result.findings.append(CopyIncomplete(
                other, "HVB-COPY-INCOMPLETE",
                f"the copies differ: {compared.summary()}"))
        _catalog(ctx, ref, uid, other, info.id, info.meta)
    except HvbError as exc:
        result.findings.append(CopyFailed.of(exc, other))

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
    host = open_host(loaded.host(host_label), ctx.clock)
    try:
        source = open_source(loaded.host(host_label))
        if isinstance(job, HypervVmJob):
            with recorder.step("sweep leftovers", host_label) as figures:
                swept = host.run("Clear-HvbLeftovers", VMName=list(job.vms), KeepRunId=uid,
                                 SkipShadowCopies=True)
                _swept(recorder, figures, swept)
        elif isinstance(job, FilesJob) and host_cfg.transport != "local":
            with recorder.step("sweep leftovers", host_label) as figures:
                swept = host.run("Clear-HvbLeftovers", KeepRunId=uid, Owner=ref.label,
                                 SkipCheckpoints=True)
                _swept(recorder, figures, swept)
        elif isinstance(job, SqlServerJob) and host_cfg.transport != "local":
            # The run shares (hvb-<run>-sql$) a crashed SQL run left: the host of a SQL job may
            # be a SQL Server VM that no VM or files job visits. No checkpoint, no shadow copy.
            with recorder.step("sweep leftovers", host_label) as figures:
                swept = host.run("Clear-HvbLeftovers", KeepRunId=uid, SkipCheckpoints=True,
                                 SkipShadowCopies=True)
                _swept(recorder, figures, swept)
        spare = _spare(ctx, ref, copies, recorder)
        try:
            repo = open_for_writing(loaded.repository(ref.client_name, copies[0]),
                                    sleep=ctx.sleep, other=spare)
        except BaseException:
            if spare is not None:
                spare.close()
            raise
        try:
            with backing_up(repo, f"backup {ref.label} run {uid}", other=spare,
                            **_backup_options(ctx, job)) as backup:
                _health(recorder, result, backup, copies[0])
                if spare is not None:  # only the checks before the backup use it
                    spare.close()
                    spare = None
                _capture_all(ctx, ref, uid, recorder, result, host, source, backup,
                             host_cfg.staging_dir, deadline)
                if backup.stats.files == 0 and result.status == RunStatus.ECHEC:
                    backup.close()
                    return  # nothing at all to commit: every object failed
                # A VM or database that failed: the point is partial, and retention gives it
                # no place of a complete one (retention/policy.py).
                failed = sorted({f.object for f in result.findings
                                 if isinstance(f, ObjectFailed) and f.object})
                meta: dict[str, Any] = {"client": ref.client_name, "job": ref.job_name,
                                        "run": uid, "host": job.host}
                if failed:
                    meta["incomplete"] = failed
                with recorder.step("commit snapshot", copies[0]) as figures:
                    info = backup.commit(meta)
                    figures.bytes_read = backup.stats.bytes_read
                    figures.bytes_new = backup.stats.bytes_new
                    figures.bytes_sent = backup.stats.bytes_stored
                    figures.files = backup.stats.files
            result.snapshot = info.id
            result.figures = figures
            _catalog(ctx, ref, uid, copies[0], info.id, info.meta)
            for other in copies[1:]:
                _copy(ctx, ref, uid, recorder, result, repo, other, info)
            _canary(recorder, result, repo.target, copies[0])
        finally:
            repo.close()
            if spare is not None:
                spare.close()
        try:
            with recorder.step("retention", ref.job.retention.policy().describe()) as figures:
                decisions = apply_retention(loaded, ref, ctx.sessions, ctx.clock.now(),
                                            sleep=ctx.sleep)
                figures.details = {"kept": sum(d.keep for d in decisions),
                                   "forgotten": sum(not d.keep for d in decisions)}
        except HvbError as exc:
            result.findings.append(RetentionFailed.of(exc))
        result.findings.extend(_against_history(ctx, ref, uid, copies))
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


def _canary(recorder: RunRecorder, result: RunResult, target: Target, baie: str) -> None:
    """Through an append-only access: try to destroy the canary file with the very account
    that wrote tonight's point (baie/canary.py). Refused: the step is ok and the client's
    digest says the copy is protected. Allowed: a finding, and the hotline is alerted."""
    if not is_append_only(target):
        return
    try:
        with recorder.step("canary", baie) as figures:
            tried = probe(target)
            if tried is None:
                return
            figures.details = tried.to_dict()
            if not tried.protected:
                figures.details["status"] = "failed"
    except HvbError as exc:
        recorder.event("WARNING", f"the canary could not be tried on {baie}: {exc.message}")
        return
    if not tried.protected:
        result.findings.append(BaieUnprotected(
            baie, "HVB-BAIE-UNPROTECTED",
            f"the append-only account on {baie} was allowed to {', '.join(tried.allowed)} the "
            "canary file: the copies there are NOT protected against deletion; check the "
            "account's sshd Match block (docs/baie-setup.md)"))


def _spare(ctx: RunContext, ref: JobRef, copies: list[str], recorder: RunRecorder
           ) -> Target | None:
    """The second copy, opened to copy back what the first baie lost (store/health.py); None
    when there is none or it cannot be reached (the backup then sends the chunks again)."""
    if len(copies) < 2:
        return None
    try:
        return open_target(ctx.loaded.baie(copies[1], ref.client_name), sleep=ctx.sleep)
    except HvbError as exc:
        recorder.event("INFO", f"{copies[1]} not reachable to repair {copies[0]} from it: "
                       f"{exc.message}")
        return None


def _health(recorder: RunRecorder, result: RunResult, backup: Backup, baie: str) -> None:
    """What the checks of the baie found before reading: a finding, and the details kept."""
    health = backup.health
    if health is None:
        return
    recorder.event("INFO", f"{baie}: {health.packs_checked} pack(s) read back and "
                   f"{health.headers_checked} header(s) checked before the backup")
    if health.strays:
        recorder.event("INFO", f"{baie}: {len(health.strays)} file(s) that are not the "
                       f"repository's, ignored: {', '.join(health.strays[:10])}")
    if health.found:
        result.findings.append(BaieDamaged(baie, "HVB-STORE-CORRUPT", health.summary()))
        recorder.event("WARNING", f"{baie}: {health.summary()}")


def _swept(recorder: RunRecorder, figures: StepFigures, swept: dict[str, Any]) -> None:
    """What an earlier run left on the host and this one removed: kept as evidence (a run that
    left a checkpoint behind did not end as it should have)."""
    checkpoints = [c for c in swept.get("checkpoints", []) if c["removed"]]
    copies = [c for c in swept.get("shadow_copies", []) if c["removed"]]
    shares = [s["name"] for s in swept.get("run_shares", []) if s["removed"]]
    figures.details = {"checkpoints": [f"{c['vm']}: {c['name']}" for c in checkpoints],
                       "shadow_copies": [c["id"] for c in copies], "run_shares": shares}
    for c in checkpoints:
        recorder.event("WARNING", f"{c['vm']}: removed checkpoint {c['name']!r} left by an "
                       "earlier run")
    if copies:
        recorder.event("WARNING", f"removed {len(copies)} shadow copy(ies) left by an earlier "
                       "run")
    if shares:
        recorder.event("WARNING", f"removed the share(s) {', '.join(shares)} left by an earlier "
                       "run")


def _backup_options(ctx: RunContext, job: AnyJob) -> dict[str, Any]:
    options: dict[str, Any] = {"compression_level": job.compression_level,
                               "now": ctx.clock.now, "progress": ctx.progress}
    if isinstance(job, HypervVmJob):  # disk images met in other jobs: the store's default
        options["image_chunk"] = job.image_chunk_kib * 1024
    return options


def _capture_all(ctx: RunContext, ref: JobRef, uid: str, recorder: RunRecorder,
                 result: RunResult, host: HostSession, source: Source, backup: Backup,
                 staging: str, deadline: datetime) -> None:
    job = ref.job
    if isinstance(job, HypervVmJob):
        captures: list[VmCapture] = []
        for vm in job.vms:
            try:
                with ExitStack() as stack:

                    def take(stack: ExitStack = stack, vm: str = vm) -> VmCapture:
                        return stack.enter_context(checkpoint(
                            host, recorder, vm, uid, allow_crash=allows_crash(job),
                            mode=job.mode, staging=staging))

                    capture = _retrying(ctx, ref, recorder, vm, deadline, take)
                    captures.append(capture)
                    _read(recorder, source, backup, capture.exposed, None, result.findings)
                result.findings.extend(capture.findings)  # the merge is known on release
            except HvbError as exc:
                result.findings.append(ObjectFailed.of(exc, vm))
        result.consistency = consistency_of(captures)
    elif isinstance(job, SqlServerJob):
        with native_backups(host, recorder, job, uid, staging) as dumps:
            result.findings.extend(dumps.findings)
            _read(recorder, source, backup, dumps.exposed, None, result.findings)
        result.consistency = "application"
    elif isinstance(job, FilesJob):
        use_vss = uses_vss(job, ref.client.hosts[job.host].transport)
        with gathered(ctx.loaded, job, recorder, ctx.clock.now()), \
                shadow_copy(host, recorder, list(job.paths), uid, use_vss,
                            owner=ref.label) as exposed:
            _read(recorder, source, backup, exposed, excluded(job), result.findings)
        result.consistency = "application" if use_vss else "none"


def _read(recorder: RunRecorder, source: Source, backup: Backup, exposed: list[Exposed],
          skip: Callable[[str], bool] | None, findings: list[Finding]) -> None:
    by_object: dict[str, list[Exposed]] = {}
    for item in exposed:
        by_object.setdefault(item.obj, []).append(item)
    for obj, items in by_object.items():
        before = backup.stats.bytes_read, backup.stats.files, backup.stats.bytes_new
        denied_before = len(backup.denied)
        with recorder.step("read", obj) as figures:
            for item in items:
                backup.add_path(source, item.path, shown_as=item.shown_as, skip=skip)
            figures.bytes_read = backup.stats.bytes_read - before[0]
            figures.files = backup.stats.files - before[1]
            figures.bytes_new = backup.stats.bytes_new - before[2]
            denied = backup.denied[denied_before:]
            if denied:
                figures.details = {"denied": denied[:100], "denied_count": len(denied)}
        if denied:
            findings.append(files_unreadable(obj, denied))


def _against_history(ctx: RunContext, ref: JobRef, uid: str, copies: list[str]
                     ) -> list[Finding]:
    """Each copy's snapshot names against the snapshots the history committed (rollback,
    planted files); a baie that cannot be listed is left to the copy's own finding."""
    found: list[Finding] = []
    for baie in copies:
        try:
            target = open_target(ctx.loaded.baie(baie, ref.client_name), sleep=ctx.sleep)
            try:
                present = rollback.listed(target)
            finally:
                target.close()
        except HvbError:
            continue
        with ctx.sessions() as session:
            gaps = rollback.compare(session, ref.client_name, baie, present, current_run=uid)
        if not gaps.deferred and _adopt_uncatalogued(ctx, ref, baie, present):
            with ctx.sessions() as session:
                gaps = rollback.compare(session, ref.client_name, baie, present,
                                        current_run=uid)
        found += gaps.findings()
    return found


def _adopt_uncatalogued(ctx: RunContext, ref: JobRef, baie: str, present: set[str]) -> int:
    """Snapshots a run committed that an interruption kept out of the history (the process
    was killed between writing the snapshot and recording it): signed by this client's writer
    and naming a run of this client in the history, they are its restore points, catalogued
    now rather than alerted as planted. Returns how many."""
    with ctx.sessions() as session:
        known = set(session.scalars(select(SnapshotRow.snapshot_id).join(
            ClientRow, SnapshotRow.client_id == ClientRow.id).where(
            ClientRow.key == ref.client_name, SnapshotRow.baie == baie)))
    unknown = present - known  # not recorded on this baie: usually nothing (no read then)
    if not unknown:
        return 0
    try:
        repo = open_for_writing(ctx.loaded.repository(ref.client_name, baie), create=False,
                                sleep=ctx.sleep)
    except HvbError:
        return 0
    try:
        infos = [i for i in repo.snapshots() if i.id in unknown and i.authenticated]
    finally:
        repo.close()
    adopted = 0
    with ctx.sessions() as session, session.begin():
        for info in infos:
            run = session.scalars(select(RunRow).where(
                RunRow.uid == str(info.meta.get("run")))).first()
            job = session.get(JobRow, run.job_id) if run is not None else None
            owner = session.get(ClientRow, job.client_id) if job is not None else None
            if run is None or job is None or owner is None or owner.key != ref.client_name \
                    or job.key != info.meta.get("job"):
                continue
            session.add(SnapshotRow(
                snapshot_id=info.id, baie=baie, client_id=owner.id, job_id=job.id,
                run_id=run.id, taken_at=info.time, bytes_total=info.meta.get("bytes"),
                files=info.meta.get("files"), objects=[]))
            adopted += 1
            log.warning("%s: restore point %s of run %s (interrupted before it was recorded) "
                        "is on baie %s: recorded now", ref.label, info.id[:12], run.uid, baie)
    return adopted


def _catalog(ctx: RunContext, ref: JobRef, uid: str, baie: str, snapshot_id: str,
             meta: dict[str, object]) -> None:
    with ctx.sessions() as session, session.begin():
        job_row = known_job(session, ref.client_name, ref.job_name)
        session.add(SnapshotRow(
            snapshot_id=snapshot_id, baie=baie, client_id=job_row.client_id, job_id=job_row.id,
            run_id=run_by_uid(session, uid).id, taken_at=datetime.fromisoformat(str(meta["time"])),
            bytes_total=meta["bytes"], files=meta["files"], objects=[]))
