"""A VM: checkpoint -> its frozen disk chain is read -> checkpoint removed and merged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from orchestrator.capture import Exposed
from orchestrator.errors import HvbError
from orchestrator.history.recorder import RunRecorder
from orchestrator.hosts.session import HostSession


@dataclass
class VmCapture:
    exposed: list[Exposed]
    consistency: str
    warnings: list[str] = field(default_factory=list)
    configuration: dict[str, object] = field(default_factory=dict)


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
                host.run("Remove-HvbCheckpoint", VMName=vm, CheckpointName=name)
        except HvbError:
            pass  # recorded by the step; the next run's sweep tries again
        raise
    capture = VmCapture([], made["consistency"], configuration=made["configuration"])
    if made["consistency"] == "crash":
        capture.warnings.append(f"{vm}: crash-consistent backup (guest VSS failed: "
                                f"{made.get('vss_error') or 'unknown reason'})")
        recorder.event("WARNING", capture.warnings[-1])
    if mode == "export":
        capture.exposed = [Exposed(f["path"], f["path"], vm) for f in made["files"]]
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
            capture.warnings.append(
                f"{vm}: checkpoint {made['checkpoint_name']} removed but its disks are not "
                f"merged yet ({', '.join(removed['remaining_files'])}); the next run sweeps it")
            recorder.event("WARNING", capture.warnings[-1])
        if mode == "export":
            host.run("Remove-HvbStaging", StagingPath=staging, RunId=run_uid)
