"""A VM: checkpoint -> its frozen disk chain is read -> checkpoint removed and merged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from orchestrator.capture import Exposed
from orchestrator.config.models import HypervVmJob
from orchestrator.errors import HvbError
from orchestrator.findings import CheckpointNotMerged, CrashConsistent, Finding
from orchestrator.history.recorder import RunRecorder
from orchestrator.hosts.session import HostSession


@dataclass
class VmCapture:
    exposed: list[Exposed]
    consistency: str
    findings: list[Finding] = field(default_factory=list)
    configuration: dict[str, object] = field(default_factory=dict)


def allows_crash(job: HypervVmJob) -> bool:
    """Whether a VM whose guest VSS fails may be saved crash-consistent (the job's policy)."""
    return job.consistency == "application-or-crash"


def consistency_of(captures: list[VmCapture]) -> str | None:
    """A job's consistency is its weakest VM's: one crash-consistent VM makes it "crash"."""
    found = [c.consistency for c in captures]
    return "crash" if "crash" in found else ("application" if found else None)


@contextmanager
def checkpoint(host: HostSession, recorder: RunRecorder, vm: str, run_uid: str, *,
               allow_crash: bool, mode: str, staging: str) -> Iterator[VmCapture]:
    """Take the checkpoint (raises when it cannot be taken); always remove it afterwards.
    A merge that does not finish, or a crash-consistent fallback, becomes a warning."""
    name = f"hvbackup-{run_uid}"
    try:
        with recorder.step("checkpoint", vm) as figures:
            made = host.run("New-HvbCheckpoint", VMName=vm, RunId=run_uid,
                            AllowCrashConsistent=allow_crash, Mode=mode,
                            StagingPath=staging if mode == "export" else None)
            # What Restore-HvbVm.ps1 -Mode recreate needs to rebuild the VM: its recorded
            # configuration and disk layout (docs/technician.md, "A whole VM").
            figures.details = {"consistency": made["consistency"],
                               "checkpoint": made["checkpoint_name"],
                               "configuration": made.get("configuration"),
                               "disks": made.get("disks")}
    except HvbError:
        # The host may have taken the checkpoint before the call failed (a timeout, a lost
        # connection): remove it now rather than leave it to the next run's sweep.
        try:
            with recorder.step("remove checkpoint", vm):
                for taken in (name, f"{name} (crash-consistent)"):
                    host.run("Remove-HvbCheckpoint", VMName=vm, CheckpointName=taken)
        except HvbError:
            pass  # recorded by the step; the next run's sweep tries again
        raise
    capture = VmCapture([], made["consistency"], configuration=made["configuration"])
    if made["consistency"] == "crash":
        capture.findings.append(CrashConsistent(
            vm, "HVB-SCRIPT-FAILED", "crash-consistent backup (guest VSS failed: "
            f"{made.get('vss_error') or 'unknown reason'})", "GUEST_VSS_FAILED"))
        recorder.event("WARNING", capture.findings[-1].headline)
    if mode == "export":
        # Read through the run's share of the export folder (files[].exposed); a host whose
        # scripts predate it gives drive paths, which only an administrator reads.
        capture.exposed = [Exposed(f.get("exposed") or f["path"], f["path"], vm)
                           for f in made["files"]]
    else:
        seen: set[str] = set()
        for disk in made["disks"]:
            for path in disk["chain"]:
                if path not in seen:
                    seen.add(path)
                    capture.exposed.append(Exposed(path, path, vm))
    try:
        yield capture
    finally:
        with recorder.step("remove checkpoint", vm) as figures:
            removed = host.run("Remove-HvbCheckpoint", VMName=vm,
                               CheckpointName=made["checkpoint_name"])
            figures.details = {"merged": removed["merged"],
                               "merge_seconds": removed["merge_seconds"]}
            if not removed["merged"]:
                figures.details["status"] = "warning"
        if not removed["merged"]:
            capture.findings.append(CheckpointNotMerged(
                vm, "HVB-CHECKPOINT-NOT-MERGED",
                f"checkpoint {made['checkpoint_name']} removed but its disks are not merged yet "
                f"({', '.join(removed['remaining_files'])}); Hyper-V goes on merging without a "
                "checkpoint to sweep: check that these files disappear (hvbackup inventory "
                "lists them under the VM) and the Hyper-V-VMMS event log"))
            recorder.event("WARNING", capture.findings[-1].headline)
        if mode == "export":
            host.run("Remove-HvbStaging", StagingPath=staging, RunId=run_uid)
