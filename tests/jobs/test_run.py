"""One run end to end on a simulated host: statuses for the right reasons, everything in the
history, restore points that restore what the host had, nothing left behind on the host."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.capture.sql import native_backups
from orchestrator.config.models import SqlServerJob
from orchestrator.history.models import JobRow, RunEventRow, RunRow, SnapshotRow
from orchestrator.history.recorder import RunAlreadyClaimed, RunRecorder
from orchestrator.jobs.run import run_job
from orchestrator.store.restore import local_relative
from tests.world import SIMULATED, Setup


def found(result: Any) -> list[tuple[str, str | None, str, str | None]]:
    """What a run found, as typed data: kind, object, HVB code, the host script's code."""
    return [(f.kind, f.object, f.code, f.script_code) for f in result.findings]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vm_job_succeeds_and_restores_the_frozen_disks(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    result = s.run("erp")
    assert result.status == "REUSSIE", result
    assert result.consistency == "application"
    assert [name for name, _obj, _st in s.steps(result.uid)] == [
        "sweep leftovers", "checkpoint", "read", "remove checkpoint", "checkpoint", "read",
        "remove checkpoint", "commit snapshot", "copy", "retention"]
    host = s.host()
    disk = "D:\\Hyper-V\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"
    original = sha(host.local_path(disk))
    assert host.run("Get-HvbInventory")["leftovers"]["checkpoints"] == []
    out = tmp_path / "out"
    s.restore("erp", out)
    assert sha(out / local_relative(disk)) == original
    with s.sessions() as session:
        run = session.scalars(select(RunRow)).one()
        assert run.state == "finished" and run.bytes_read == 8 * 1024 * 1024
        assert {r.baie for r in session.scalars(select(SnapshotRow))} == {"site-a", "site-b"}


def test_both_baies_hold_the_same_files(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    a = {p.relative_to(tmp_path / "baie-a"): sha(p) for p in (tmp_path / "baie-a").rglob("*")
         if p.is_file() and "locks" not in p.parts}
    b = {p.relative_to(tmp_path / "baie-b"): sha(p) for p in (tmp_path / "baie-b").rglob("*")
         if p.is_file()}
    assert a == b and len(a) >= 4
    s.restore("partages", tmp_path / "from-b", baie="site-b")


def test_files_job_reads_a_shadow_copy_and_records_real_names(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    result = s.run("partages")
    assert result.status == "REUSSIE", result
    out = tmp_path / "out"
    s.restore("partages", out)
    restored = out / "D" / "Partages"
    live = s.host().local_path("D:\\Partages")
    names = {p.relative_to(restored) for p in restored.rglob("*") if p.is_file()}
    expected = {p.relative_to(live) for p in live.rglob("*") if p.is_file()
                and not p.name.endswith("-00001.txt")}
    assert names == expected  # under D:\Partages, not the shadow-copy link; exclusions out
    assert s.host().run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_sql_job_keeps_the_native_dumps(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    result = s.run("compta")
    assert result.status == "REUSSIE", result
    out = tmp_path / "out"
    s.restore("compta", out)
    baks = sorted(p.name for p in out.rglob("*.bak"))
    assert baks == ["COMPTA.bak", "PAIE.bak"]
    staging = s.host().local_path("D:\\hvbackup-staging")
    assert not any(staging.rglob("*.bak")), "staging emptied after the run"


def test_all_databases_leaves_the_system_ones_out_and_the_run_log_says_so(
        tmp_path: Path) -> None:
    s = Setup(tmp_path)
    result = s.run("compta")  # databases: [all]
    assert result.status == "REUSSIE", result
    with s.sessions() as session:
        messages = [e.message for e in session.scalars(select(RunEventRow))]
    assert [m for m in messages if "left out" in m] == [
        f"SQL01\\COMPTA\\{name} left out of 'all': a system database (name it in databases: "
        "to back it up)" for name in ("master", "model", "msdb")]


class RecordingHost:
    """The simulated host's door, noting the timeout of each call."""

    def __init__(self, host: Any) -> None:
        self.host, self.label = host, host.label
        self.timeouts: list[tuple[str, bool, float | None]] = []

    def run(self, script: str, /, *, timeout_s: float | None = None,
            **params: Any) -> dict[str, Any]:
        self.timeouts.append((script, bool(params.get("DryRun")), timeout_s))
        return dict(self.host.run(script, timeout_s=timeout_s, **params))

    def close(self) -> None:
        self.host.close()


def test_the_sql_timeout_grows_with_the_databases_all_stands_for(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    job = s.loaded.job("acme/compta").job
    assert isinstance(job, SqlServerJob) and job.databases == ["all"]
    host = RecordingHost(s.host())
    recorder = RunRecorder(s.sessions, s.clock.now)
    recorder.start("acme", "compta", "202611232200-c0c0c0", s.clock.now(), timedelta(hours=8),
                   "schedule")
    with native_backups(host, recorder, job, "202611232200-c0c0c0",
                        "D:\\hvbackup-staging") as dumps:
        assert len(dumps.exposed) == 2  # COMPTA and PAIE
    hour = job.command_timeout_s
    assert host.timeouts[:2] == [("Invoke-HvbSqlBackup", True, 2 * hour + 600),
                                 ("Invoke-HvbSqlBackup", False, 2 * hour * 2 + 600)]


def test_one_failed_database_is_an_echec_naming_it(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: verifyonly-failure, target: PAIE}")
    result = s.run("compta")
    assert result.status == "ECHEC"
    assert found(result) == [("object_failed", "PAIE", "HVB-SCRIPT-FAILED", "SQL_VERIFY_FAILED")]
    assert result.headline.headline.startswith("PAIE: RESTORE VERIFYONLY of [PAIE] failed")
    with s.sessions() as session:  # the history keeps the two codes apart
        run = session.scalars(select(RunRow)).one()
        assert (run.error_code, run.script_code) == ("HVB-SCRIPT-FAILED", "SQL_VERIFY_FAILED")
    out = tmp_path / "out"
    s.restore("compta", out)  # the other database still has its restore point
    assert sorted(p.name for p in out.rglob("*.bak")) == ["COMPTA.bak"]


def test_guest_vss_failure_without_fallback_is_an_echec_after_retries(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    result = s.run("erp")
    assert result.status == "ECHEC"
    assert found(result) == [("object_failed", "ERP01", "HVB-SCRIPT-FAILED", "GUEST_VSS_FAILED")]
    assert s.sleeps == [60.0]  # retries: 1 (a guest's VSS may work a little later)
    assert s.host().run("Get-HvbInventory")["leftovers"]["checkpoints"] == []
    with s.sessions() as session:
        messages = [e.message for e in session.scalars(select(RunEventRow))]
    assert any("retry 1/1" in m for m in messages)


def test_guest_vss_failure_with_fallback_is_a_warning(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}",
              consistency="application-or-crash")
    result = s.run("erp")
    assert result.status == "AVERTISSEMENT"
    assert result.consistency == "crash"
    assert found(result) == [("crash_consistent", "ERP01", "HVB-SCRIPT-FAILED",
                              "GUEST_VSS_FAILED")]
    assert result.headline.headline.startswith("ERP01: crash-consistent backup")


def test_checkpoint_that_will_not_merge_then_next_night(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: merge-stuck, target: DC01, dates: [2026-11-23]}")
    first = s.run("erp")
    assert first.status == "AVERTISSEMENT"
    assert found(first) == [("checkpoint_not_merged", "DC01", "HVB-CHECKPOINT-NOT-MERGED", None)]
    said = first.headline.headline
    assert "DC01: checkpoint hvbackup-" in said and "not merged" in said
    s.clock.advance(timedelta(days=1))
    second = s.run("erp")
    assert second.status == "REUSSIE", second
    assert s.host().run("Get-HvbInventory")["leftovers"]["checkpoints"] == []


def test_host_unreachable_is_an_echec_with_the_reason(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: unreachable}")
    result = s.run("erp")
    assert result.status == "ECHEC"
    assert found(result) == [("run_failed", None, "HVB-HOST-UNREACHABLE", None)]
    assert "cannot connect" in result.headline.message
    with s.sessions() as session:
        run = session.scalars(select(RunRow)).one()
        assert (run.state, run.status, run.error_code) == ("finished", "ECHEC",
                                                           "HVB-HOST-UNREACHABLE")


def test_a_run_is_claimed_once(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    when = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    ref = s.loaded.job("acme/partages")
    run_job(s.ctx, ref, scheduled_for=when)
    with pytest.raises(RunAlreadyClaimed):
        run_job(s.ctx, ref, scheduled_for=when)


def test_unmounted_baie_retries_then_fails_with_the_reason(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    (tmp_path / "baie-a").rmdir()  # the array is not mounted
    result = s.run("partages")
    assert result.status == "ECHEC"
    assert found(result) == [("run_failed", None, "HVB-BAIE-UNREACHABLE", None)]
    assert "is not there (array unmounted or disconnected?)" in result.headline.message
    assert "(after 5 attempts)" in result.headline.message
    assert s.sleeps == [2.0, 4.0, 8.0, 16.0]
    assert not (tmp_path / "baie-a").exists()  # nothing written on the orchestrator's disk
    assert s.host().run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_second_copy_unreachable_is_a_warning_naming_the_baie(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    (tmp_path / "baie-b").rename(tmp_path / "baie-b-unplugged")
    s.clock.advance(timedelta(minutes=5))
    result = s.run("partages")
    assert result.status == "AVERTISSEMENT"
    assert found(result) == [("copy_failed", "site-b", "HVB-BAIE-UNREACHABLE", None),
                             ("retention_failed", None, "HVB-BAIE-UNREACHABLE", None)]
    assert result.headline.headline.startswith("site-b: baie site-b:")
    (tmp_path / "baie-b-unplugged").rename(tmp_path / "baie-b")
    from orchestrator.baie.open import open_target
    from orchestrator.jobs.copy import parity
    from orchestrator.store.open import open_for_writing

    first = open_for_writing(s.loaded.repository("acme", "site-a"))
    second = open_target(s.loaded.baie("site-b", "acme"))
    lacking = parity(first, second).lacking_snapshots["site-b"]
    assert len(lacking) == 1  # the restore point of the second run
    s.clock.advance(timedelta(minutes=5))
    assert s.run("partages").status == "REUSSIE"  # the next run catches up
    assert parity(first, second).identical
    first.close()


def test_unusual_figures_are_flagged_without_changing_the_status(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    for _ in range(4):
        assert s.run("partages").flags == []
        s.clock.advance(timedelta(days=1))
    live = s.host().local_path("D:\\Partages")
    for path in sorted(live.rglob("*.txt"))[5:]:
        path.unlink()  # most of the share vanished overnight
    result = s.run("partages")
    assert result.status == "REUSSIE"
    reasons = [f.reason for f in result.flags]
    assert any(r.startswith("volume ") and "sous l'habituel" in r for r in reasons)
    assert any("fichiers au lieu de" in r for r in reasons)
    with s.sessions() as session:
        run = session.scalars(select(RunRow).where(RunRow.uid == result.uid)).one()
        assert [f["figure"] for f in run.sanity_flags] == [f.figure for f in result.flags]


def test_checkpoint_taken_but_call_lost_is_removed_in_the_same_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host takes the checkpoint but its answer never arrives (a timeout over a slow
    WAN): the run removes the checkpoint itself instead of leaving it to the next sweep."""
    from orchestrator.errors import HostTimeout
    from orchestrator.hosts.simulated import SimulatedHost

    real_run = SimulatedHost.run

    def lost_answer(self: SimulatedHost, script: str, /, **params: Any) -> Any:
        result = real_run(self, script, **params)
        if script == "New-HvbCheckpoint" and params.get("VMName") == "ERP01":
            raise HostTimeout("host acme/hv01: New-HvbCheckpoint.ps1 timed out")
        return result

    monkeypatch.setattr(SimulatedHost, "run", lost_answer)
    s = Setup(tmp_path)
    result = s.run("erp")
    assert result.status == "ECHEC"
    assert found(result) == [("object_failed", "ERP01", "HVB-HOST-TIMEOUT", None)]
    monkeypatch.setattr(SimulatedHost, "run", real_run)
    assert s.host().run("Get-HvbInventory")["leftovers"]["checkpoints"] == []


def test_a_leftover_checkpoint_swept_is_kept_as_evidence(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: leftover-checkpoint, target: DC01}")
    result = s.run("erp")
    assert result.status == "REUSSIE"
    with s.sessions() as session:
        run = session.scalars(select(RunRow).where(RunRow.uid == result.uid)).one()
        [sweep] = [st for st in run.steps if st.name == "sweep leftovers"]
        messages = [e.message for e in session.scalars(select(RunEventRow))]
    assert sweep.details["checkpoints"] and sweep.details["checkpoints"][0].startswith("DC01: ")
    assert any(m.startswith("DC01: removed checkpoint 'hvbackup-") and "left by an earlier run"
               in m for m in messages)


# The host reached as the onboarded account through the JEA endpoint: no administrator, so
# only the per-run shares can be read (the simulated source refuses drive paths, as SmbSource
# without admin_shares does; tests/mover reads such shares from a real Samba server).
JEA = SIMULATED + ", jea: true"


def test_a_vm_export_job_reads_the_export_through_the_run_share(tmp_path: Path) -> None:
    s = Setup(tmp_path, simulated=JEA, vm="\n        mode: export")
    result = s.run("erp")
    assert result.status == "REUSSIE", result
    host = s.host()
    disk = "D:\\Hyper-V\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"
    out = tmp_path / "out"
    s.restore("erp", out)
    restored = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.vhdx"))
    # Recorded under the export folder's real name, not under the share it was read from.
    assert restored[0].startswith("D/hvbackup-staging/") and "hvb-" not in restored[0]
    assert {sha(p) for p in out.rglob("ERP01.vhdx")} == {sha(host.local_path(disk))}
    assert host.world.state["run_shares"] == {}  # removed with the staging folder
    assert not (host.root / "shares").exists() or not any((host.root / "shares").iterdir())


def test_a_sql_job_reads_the_dumps_through_the_run_share(tmp_path: Path) -> None:
    s = Setup(tmp_path, simulated=JEA, vm="\n        mode: export")  # validate requires it
    result = s.run("compta")
    assert result.status == "REUSSIE", result
    out = tmp_path / "out"
    s.restore("compta", out)
    assert sorted(p.name for p in out.rglob("*.bak")) == ["COMPTA.bak", "PAIE.bak"]
    host = s.host()
    assert host.world.state["run_shares"] == {}
    assert not any(host.local_path("D:\\hvbackup-staging").rglob("*.bak"))


def test_a_second_run_of_a_job_in_progress_is_refused(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """`hvbackup backup` started twice: the second must not sweep the first one's checkpoint."""
    from orchestrator.history.recorder import JobAlreadyRunning
    from orchestrator.jobs.run import claim_run

    s = Setup(tmp_path)
    ref = s.loaded.job("acme/erp")
    first = claim_run(s.ctx, ref)  # in progress, in this (live) process
    with pytest.raises(JobAlreadyRunning, match="acme/erp is already running: run "):
        s.run("erp")
    refused = cli("backup", "-c", str(s.config), "acme/erp")
    assert refused.code != 0 and f"run {first.uid}" in refused.err
    assert s.run("compta").status == "REUSSIE"  # another job of the host is not held
    with s.sessions() as session:
        assert [r.uid for r in session.scalars(select(RunRow).join(JobRow).where(
            JobRow.key == "erp"))] == [first.uid]


def test_a_link_in_a_share_to_a_file_elsewhere_is_not_backed_up(tmp_path: Path) -> None:
    """A symbolic link left in a shared folder, pointing at a file outside it: the shadow
    copy keeps it a link, and the backup does not take what it points to."""
    s = Setup(tmp_path)
    secret = tmp_path / "ailleurs" / "mots-de-passe.txt"
    secret.parent.mkdir()
    secret.write_text("le contenu d'un fichier hors du partage\n")
    share = s.host().local_path("D:\\Partages")
    (share / "raccourci.txt").symlink_to(secret)
    assert s.run("partages").status == "REUSSIE"
    out = tmp_path / "restored"
    s.restore("partages", out)
    restored = [p for p in out.rglob("*") if p.is_file()]
    assert restored, "nothing restored"
    assert not [p for p in restored if p.name == "raccourci.txt"]
    assert all(b"hors du partage" not in p.read_bytes() for p in restored)
