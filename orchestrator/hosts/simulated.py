"""``SimulatedHost``: every script of powershell/ implemented in Python over a local folder.

It drives the demo and the tests, since no Windows machine exists here. Each script is a
method named after it whose keyword-only parameters are the script's ``param()`` names (a
contract test checks both lists are equal); its result goes through JSON and the same schema
check as a real host's (:func:`orchestrator.hosts.scripts.interpret_result`).

Faults are injected from the host's ``simulated.faults`` settings, optionally on given dates:
guest VSS failure, a checkpoint that fails for another reason (checkpoint-failure), a merge
that outlives its checkpoint (merge-stuck: the checkpoint is gone from the list, the VM still
writes to its .avhdx), a leftover checkpoint from a crashed run, a shadow copy DiskShadow
creates but cannot expose on its mount folder (expose-failure, target: the volume, ``D:\\``),
the host unreachable, the staging disk full, RESTORE VERIFYONLY failing, a slow host.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PureWindowsPath
from typing import Any

from orchestrator.errors import HostTimeout, HostUnreachable
from orchestrator.hosts import scripts, simacl, simroots, simsql
from orchestrator.hosts.simworld import (
    SQL_ROOT,
    SimWorld,
    WorldSpec,
    edition_of,
    next_database_id,
    service_sid,
)
from orchestrator.procs import machine_lock

log = logging.getLogger(__name__)

FAULT_KINDS = ("guest-vss-failure", "checkpoint-failure", "merge-stuck", "leftover-checkpoint",
               "unreachable", "staging-full", "verifyonly-failure", "slow", "expose-failure")
DEFAULT_STAGING = "D:\\hvbackup-staging"
# $PSSenderInfo.ConnectedUser: the account the orchestrator connects with (onboarding's).
CONNECTED_USER = "HV01\\hvbackup"
CHECKPOINT_MODE_REFUSED = (
    "Checkpoint mode reads the frozen disks in {vm}'s own folder, which the hvbackup account "
    "(no administrator, through the JEA endpoint) cannot read on {host}, and hvbackup does not "
    "change the permissions of production disks: set mode: export on this job "
    "(docs/lab/shares.md).")
SQL_DATA = "D:\\SQL\\Restored"
# New-HvbShadowCopy mounts its copies here, and nowhere else (-LinkRoot may only name it).
LINK_ROOT = "C:\\ProgramData\\hvbackup\\shadow"


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str | None = None  # a VM or database name; None = every one
    on: tuple[date, ...] = ()  # dates in the MSP timezone; empty = every day
    delay_s: float = 2.0

    def applies(self, today: date, target: str | None = None) -> bool:
        if self.on and today not in self.on:
            return False
        return self.target is None or target is None or self.target.lower() == target.lower()


class _ScriptError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_UNFIT_WHY = {
    "tempdb": "tempdb cannot be backed up",
    "snapshot": "it is a database snapshot, which cannot be backed up (back up its source "
                "database)",
    "standby": "it is in standby (read-only between log restores) and cannot be backed up "
               "until its restore sequence ends",
}


def _sql_unfit(name: str, info: dict[str, Any]) -> str | None:
    """Why BACKUP DATABASE cannot take this database at all (sys.databases: name, state_desc,
    is_in_standby, source_database_id), or None; as Invoke-HvbSqlBackup.ps1's Get-Unfit."""
    if name == "tempdb":
        return "tempdb"
    if info["source_database"]:
        return "snapshot"
    if info["state"] != "ONLINE":
        return "not_online"
    if info["is_in_standby"]:
        return "standby"
    return None


def _sql_read_only_refused(info: dict[str, Any]) -> bool:
    """A read-only database this login may not back up (HAS_PERMS_BY_NAME 'BACKUP DATABASE' is
    0: no db_backupoperator user, which a read-only database cannot be given); as
    Invoke-HvbSqlBackup.ps1. BACKUP itself reads a read-only database like any other."""
    return bool(info.get("is_read_only")) and not info["backup_operator"]


def _recorded_ids(record: list[str]) -> list[str]:
    """The shadow copy IDs of the record's lines (%ProgramData%\\hvbackup\\shadow-copies.txt):
    "<id or pending>\\t<run>\\t<owner>\\t<created>\\t<volume>\\t<mount>\\t<share>", or an
    older line holding the ID alone."""
    return [line.split("\t")[0] for line in record if line and line.split("\t")[0] != "pending"]


def _strike(record: list[str], sid: str) -> None:
    """The lines of ``sid`` struck from the record, the other lines kept."""
    record[:] = [line for line in record if line.split("\t")[0] != sid]


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedHost:
    """A simulated Hyper-V host (see module docstring)."""

    def __init__(
        self,
        label: str,
        root: Path,
        spec: WorldSpec,
        now: Callable[[], datetime],
        today: Callable[[], date],
        faults: tuple[Fault, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        roots: simroots.Roots | None = None,
        onboarded: bool = True,
        jea: bool = False,
    ) -> None:
        self.label = label
        self.root = root
        self.spec = spec
        self._now = now
        self._today = today
        self.faults = faults
        self._sleep = sleep
        self._world: SimWorld | None = None
        # Reached through the JEA endpoint with the onboarded account, no administrator: it
        # reads only the per-run shares, and the VMs' own folders give it nothing.
        self.jea = jea
        # What Initialize-HvbHost.ps1 recorded (roots.json); by default its own defaults and
        # the folders of the host's files jobs. onboarded=False: a host never onboarded.
        self.roots = roots if roots is not None or not onboarded else simroots.onboard(
            [DEFAULT_STAGING], list(spec.shares), [simroots.DEFAULT_RESTORE])

    @property
    def world(self) -> SimWorld:
        """The host's files and state, brought up to today (days pass between runs)."""
        if self._world is None:
            self._world = SimWorld(self.root, self.spec, self._today())
        else:
            self._world.advance_to(self._today())
        return self._world

    def local_path(self, windows_path: str) -> Path:
        return self.world.local_path(windows_path)

    def close(self) -> None:
        # Nothing to save: each script saved the state under the host lock before releasing
        # it. Saving the copy held here would write back a state another session (a second
        # job on the same host) has changed since, as a real host never loses its own state.
        self._world = None

    def _root(self, path: str, kind: str) -> str:
        """``path`` if inside the host's ``kind`` roots (Assert-HvbRoot), else RootRefused."""
        return simroots.check(self.roots, path, kind, self.label)

    def _link_root(self, link_root: str) -> str:
        """The mount folders' root, if ``link_root`` names it; else PATH_NOT_ALLOWED."""
        if (simroots._full(link_root) or "").lower() != LINK_ROOT.lower():
            raise _ScriptError("PATH_NOT_ALLOWED", f"-LinkRoot {link_root} refused: hvbackup's "
                               f"mount folders are under {LINK_ROOT} only.")
        return LINK_ROOT

    def _fault(self, kind: str, target: str | None = None) -> Fault | None:
        today = self._today()
        return next((f for f in self.faults if f.kind == kind and f.applies(today, target)), None)

    # -- the HostSession door -------------------------------------------------------------

    def run(self, script: str, /, *, timeout_s: float | None = None,
            **params: Any) -> dict[str, Any]:
        sent = scripts.check_call(script, params)
        where = f"host {self.label} (simulated)"
        if self._fault("unreachable"):
            raise HostUnreachable(f"{where}: cannot connect (simulated: host unreachable). Check "
                                  "that the host is up and that WinRM listens on port 5986.")
        slow = self._fault("slow")
        if slow:
            if timeout_s is not None and slow.delay_s > timeout_s:
                self._sleep(timeout_s)
                raise HostTimeout(f"{where}: {script}.ps1 did not finish within {timeout_s:g} s; "
                                  "it was stopped.")
            self._sleep(slow.delay_s)
        method = getattr(self, "script_" + script.replace("-", "_"))
        self.root.mkdir(parents=True, exist_ok=True)
        # One script at a time on a host, whoever calls (two schedulers, two jobs): the state
        # is read afresh under the lock and saved before it is released.
        with machine_lock(self.root / ".host.lock"):
            self._world = None
            try:
                result = method(**sent)
            except (_ScriptError, simroots.RootRefused) as exc:
                result = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
            self.world.save()
        return scripts.interpret_result(script, where, json.dumps(result))

    # -- inventory ------------------------------------------------------------------------

    def script_Get_HvbInventory(
        self, *, Prefix: str = "hvbackup", RecoveryOlderThanHours: int = 24,
        SkipSql: bool = False, SqlConnectTimeoutSeconds: int = 15,
        TrustServerCertificate: bool = False,
    ) -> dict[str, Any]:
        world = self.world
        self._inject_leftovers()
        self._finish_merges()
        now = self._now()
        vms, leftovers = [], []
        for name, vm in sorted(world.state["vms"].items()):
            vss_broken = self._fault("guest-vss-failure", name) is not None
            checkpoints = []
            for cp in vm["checkpoints"]:
                mine = cp["name"].startswith(Prefix + "-")
                checkpoints.append({"id": cp["id"], "name": cp["name"], "type": cp["type"],
                                    "created_utc": cp["created_utc"], "is_hvbackup": mine})
                old = datetime.fromisoformat(cp["created_utc"].replace("Z", "+00:00")) < (
                    now - timedelta(hours=RecoveryOlderThanHours))
                if mine or (cp["type"] == "Recovery" and old):
                    leftovers.append({"vm": name, "id": cp["id"], "name": cp["name"],
                                      "type": cp["type"], "created_utc": cp["created_utc"]})
            vms.append({
                "id": vm["id"], "name": name, "state": vm["state"], "generation": vm["generation"],
                "version": "10.0", "cpu_count": vm["cpu_count"], "memory_bytes": vm["memory_bytes"],
                "checkpoint_type": vm["checkpoint_type"], "config_path": vm["config_path"],
                "disks": [self._disk_info(d["path"], i) for i, d in enumerate(vm["disks"])],
                "checkpoints": checkpoints,
                "passthrough_disks": [f"SCSI 0:{len(vm['disks']) + i} {p}"
                                      for i, p in enumerate(vm.get("passthrough", []))],
                "unmerged_files": [] if checkpoints else list(vm.get("unmerged", [])),
                "vss": {"present": True, "enabled": True, "healthy": not vss_broken,
                        "status": "Error" if vss_broken else "Ok"},
            })
        sql = [] if SkipSql else [self._sql_instance(instance, entry)
                                  for instance, entry in sorted(world.state["sql"].items())]
        recorded = _recorded_ids(world.state["shadow_record"])
        shadows = [{"id": sid, "volume": s["volume"], "created_utc": s["created_utc"]}
                   for sid, s in world.state["shadow_copies"].items() if sid in recorded]
        return {
            "ok": True,
            "host": {"name": self.label.split("/")[-1].upper(),
                     "os_version": "Microsoft Windows Server 2022 Standard 10.0.20348 (simulated)",
                     "hyperv_version": "10.0.20348.1", "time_utc": _utc(now)},
            "vms": vms, "sql": sql, "volumes": self._volumes(),
            "leftovers": {"checkpoints": leftovers, "shadow_copies": shadows},
        }

    def _disk_info(self, path: str, index: int) -> dict[str, Any]:
        local = self.local_path(path)
        stat = local.stat()
        return {"controller": f"SCSI 0:{index}", "path": path, "chain": [path],
                "size_bytes": stat.st_size, "file_size_bytes": stat.st_blocks * 512,
                "format": "VHDX"}

    def _sql_instance(self, instance: str, entry: dict[str, Any]) -> dict[str, Any]:
        dbs = [{"name": db, "recovery_model": info["recovery_model"], "state": info["state"],
                "size_bytes": self.local_path(info["path"]).stat().st_size}
               for db, info in sorted(entry["databases"].items()) if db != "tempdb"]
        return {"instance": instance, "version": entry["version"], "edition": entry["edition"],
                "engine_edition": entry["engine_edition"],
                "supports_compression": edition_of(entry).backup_compression, "databases": dbs}

    _DRIVES = (("C:", 200 * 10**9), ("D:", 2000 * 10**9))

    def _drive_free(self, drive: str, size: int) -> int:
        folder = self.root / "volumes" / drive[0]
        used = sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) \
            if folder.exists() else 0
        return size // 2 - used

    def _volumes(self) -> list[dict[str, Any]]:
        out = []
        for drive, size in self._DRIVES:
            free = 0 if drive == "D:" and self._fault("staging-full") else \
                self._drive_free(drive, size)
            out.append({"drive": drive, "label": "Data" if drive == "D:" else "System",
                        "size_bytes": size, "free_bytes": max(0, free)})
        return out

    def _free_bytes(self, path: str) -> int:
        """Free bytes of the volume holding ``path`` (Win32_Volume.FreeSpace of the deepest
        volume root that starts it): a drive's as ``_volumes`` counts it, a mount point's from
        ``mount_point_free`` of the world's state (500 GB unless set)."""
        volume = self._volume_of(path)
        if len(volume) > 3:
            return int(self.world.state.get("mount_point_free", {}).get(volume, 500 * 10**9))
        # Without the staging-full fault, which says per database when it strikes.
        return next((max(0, self._drive_free(d, size)) for d, size in self._DRIVES
                     if d == volume[:2]), 0)

    def _inject_leftovers(self) -> None:
        """The 'leftover-checkpoint' fault: a checkpoint as left by a run killed yesterday
        (once per day the fault applies, as a crash happens once)."""
        day = self._today().isoformat()
        injected = self.world.state.setdefault("leftovers_injected", [])
        for name in self.world.state["vms"]:
            if self._fault("leftover-checkpoint", name) and f"{name}:{day}" not in injected:
                injected.append(f"{name}:{day}")
                # Checkpoint-VM makes what hvbackup leaves behind: type Standard (Recovery
                # checkpoints are made through WMI by backup products, never by hvbackup).
                self._make_checkpoint(name, "hvbackup-crashed-" + day.replace("-", ""),
                                      "Standard", self._now() - timedelta(days=1))

    # -- checkpoints ----------------------------------------------------------------------

    def _vm(self, name: str) -> dict[str, Any]:
        # Exact (case-insensitive) names, never patterns: the scripts compare with -eq.
        matches = [k for k in self.world.state["vms"] if k.lower() == name.lower()]
        if not matches:
            raise _ScriptError("VM_NOT_FOUND", f"No VM named '{name}' on {self.label}.")
        vm: dict[str, Any] = self.world.state["vms"][matches[0]]
        return vm

    def _make_checkpoint(self, vm_name: str, name: str, kind: str,
                         when: datetime) -> dict[str, Any]:
        vm = self._vm(vm_name)
        avhdx = []
        for disk in vm["disks"]:
            base = disk["path"].rsplit(".", 1)[0]
            path = f"{base}_{uuid.uuid4().hex[:8].upper()}.avhdx"
            self.local_path(path).write_bytes(b"")  # the VM now writes here
            avhdx.append(path)
        cp = {"id": str(uuid.uuid4()), "name": name, "type": kind, "created_utc": _utc(when),
              "avhdx": avhdx}
        vm["checkpoints"].append(cp)
        return cp

    def _frozen_disks(self, vm: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"controller_type": d.get("controller_type", "SCSI"),
                 "controller_number": d.get("controller_number", 0),
                 "controller_location": d.get("controller_location", i),
                 "path": d["path"], "chain": [d["path"]], "size_bytes": d["size_bytes"]}
                for i, d in enumerate(vm["disks"])]

    def script_New_HvbCheckpoint(
        self, *, VMName: str, RunId: str, Prefix: str = "hvbackup",
        AllowCrashConsistent: bool = False, Mode: str = "checkpoint",
        StagingPath: str | None = None, TimeoutSeconds: int = 1800, DryRun: bool = False,
    ) -> dict[str, Any]:
        vm = self._vm(VMName)
        name = f"{Prefix}-{RunId}"
        if Mode == "export" and not StagingPath:
            raise _ScriptError("BAD_PARAMETER", "-Mode export needs -StagingPath.")
        if Mode == "export":
            self._root(StagingPath or "", "staging")
        elif self.jea:
            raise _ScriptError("CHECKPOINT_MODE_REFUSED", CHECKPOINT_MODE_REFUSED.format(
                vm=VMName, host=self.label))
        crash_name = f"{name} (crash-consistent)"  # no cmdlet writes a checkpoint's notes
        existing = next((cp for cp in vm["checkpoints"] if cp["name"] in (name, crash_name)),
                        None)
        if DryRun:
            return {"ok": True, "dry_run": True, "vm": VMName, "checkpoint_name": name,
                    "planned": [f"set CheckpointType ProductionOnly (now "
                                f"{vm['checkpoint_type']}), then put it back",
                                f"{'reuse existing' if existing else 'create'} checkpoint "
                                f"'{name}'"]}
        vss_error = None
        if existing:
            cp = existing
            consistency = "crash" if cp["name"] == crash_name else "application"
        else:
            consistency = "application"
            if self._fault("checkpoint-failure", VMName):
                raise _ScriptError("CHECKPOINT_FAILED", f"The checkpoint of {VMName} failed: "
                                   "there is not enough space on the disk (simulated).")
            if self._fault("guest-vss-failure", VMName):
                vss_error = ("The guest's Volume Shadow Copy service failed to create the "
                             "application-consistent checkpoint (simulated).")
                if not AllowCrashConsistent:
                    raise _ScriptError("GUEST_VSS_FAILED", f"The application-consistent checkpoint "
                                       f"of {VMName} failed (guest VSS): {vss_error}")
                consistency = "crash"
            cp = self._make_checkpoint(VMName, crash_name if vss_error else name, "Standard",
                                       self._now())
        result: dict[str, Any] = {
            "ok": True, "vm": VMName, "vm_id": vm["id"], "checkpoint_id": cp["id"],
            "checkpoint_name": cp["name"], "consistency": consistency, "vss_error": vss_error,
            "reused": existing is not None, "disks": self._frozen_disks(vm),
            "passthrough_disks": [f"SCSI 0:{len(vm['disks']) + i} {p}"
                                  for i, p in enumerate(vm.get("passthrough", []))],
            "configuration": {
                "name": VMName, "id": vm["id"], "generation": vm["generation"], "version": "10.0",
                "cpu_count": vm["cpu_count"], "memory_startup_bytes": vm["memory_bytes"],
                "dynamic_memory": False, "memory_minimum_bytes": vm["memory_bytes"],
                "memory_maximum_bytes": vm["memory_bytes"],
                **_hardware(vm),
            },
            "export_path": None, "files": [],
        }
        if Mode == "export":
            assert StagingPath is not None
            if StagingPath.startswith("\\\\"):
                raise _ScriptError("BAD_PARAMETER", f"Staging {StagingPath} is a network share; "
                                   f"give a folder on a local volume of {self.label}.")
            # Every file of each chain goes into the export, not only its top.
            needed = sum(self.local_path(f).stat().st_size
                         for d in result["disks"] for f in d["chain"])
            drive = StagingPath[:2].upper()
            free = next(v["free_bytes"] for v in self._volumes() if v["drive"] == drive)
            if self._fault("staging-full") or free < needed:
                raise _ScriptError("STAGING_FULL", f"The volume {drive}\\ of {StagingPath} has "
                                   f"{free} bytes free; the export needs about {needed}.")
            target = f"{StagingPath}\\{RunId}"
            files = []
            for disk in vm["disks"]:
                rel = disk["path"].rsplit("\\", 1)[-1]
                dest = f"{target}\\Virtual Hard Disks\\{rel}"
                self.local_path(dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.local_path(disk["path"]), self.local_path(dest))
                files.append({"path": dest, "size_bytes": disk["size_bytes"]})
            config = f"{target}\\Virtual Machines\\{vm['id'].upper()}.vmcx"
            self.local_path(config).parent.mkdir(parents=True, exist_ok=True)
            self.local_path(config).write_text(json.dumps(result["configuration"]))
            files.append({"path": config, "size_bytes": self.local_path(config).stat().st_size})
            share = self._share_run_folder(target, f"hvb-{RunId}-vm$", RunId)
            for file in files:
                file["exposed"] = self._exposed(share, target, file["path"])
            result["export_path"], result["files"], result["share"] = target, files, share
        return result

    def script_Remove_HvbCheckpoint(
        self, *, VMName: str, CheckpointName: str, TimeoutSeconds: int = 3600,
        PollSeconds: int = 5, DryRun: bool = False,
    ) -> dict[str, Any]:
        vm = self._vm(VMName)
        cp = next((c for c in vm["checkpoints"] if c["name"] == CheckpointName), None)
        if cp is None:
            return {"ok": True, "vm": VMName, "checkpoint_name": CheckpointName, "removed": False,
                    "already_absent": True, "merged": True, "merge_seconds": 0,
                    "remaining_files": []}
        if DryRun:
            return {"ok": True, "dry_run": True, "vm": VMName, "checkpoint_name": CheckpointName,
                    "planned": [f"remove checkpoint '{CheckpointName}' and wait for the merge"]}
        merged = self._remove_checkpoint(VMName, vm, cp)
        return {"ok": True, "vm": VMName, "checkpoint_name": CheckpointName, "removed": True,
                "already_absent": False, "merged": merged,
                "merge_seconds": 3 if merged else TimeoutSeconds,
                "remaining_files": [] if merged else list(cp["avhdx"])}

    def _remove_checkpoint(self, vm_name: str, vm: dict[str, Any], cp: dict[str, Any]) -> bool:
        """Remove ``cp``. Remove-VMSnapshot drops the checkpoint object at once and merges
        afterwards: with the 'merge-stuck' fault the checkpoint is gone from every list while
        its .avhdx stay attached (``unmerged``), until a day the fault no longer applies."""
        vm["checkpoints"].remove(cp)
        if self._fault("merge-stuck", vm_name):
            vm.setdefault("unmerged", []).extend(cp["avhdx"])
            return False
        for path in cp["avhdx"]:
            self.local_path(path).unlink(missing_ok=True)
        return True

    def _finish_merges(self) -> None:
        """Merges left running end once nothing holds them any more (the fault has passed)."""
        for name, vm in self.world.state["vms"].items():
            if vm.get("unmerged") and not self._fault("merge-stuck", name):
                for path in vm.pop("unmerged"):
                    self.local_path(path).unlink(missing_ok=True)

    def script_Clear_HvbLeftovers(
        self, *, Prefix: str = "hvbackup", VMName: list[str] | None = None, KeepRunId: str = "",
        Owner: str = "hvbackup", ShadowOlderThanHours: int = 24,
        ShadowId: list[str] | None = None,
        LinkRoot: str = "C:\\ProgramData\\hvbackup\\shadow", TimeoutSeconds: int = 3600,
        SkipCheckpoints: bool = False, SkipShadowCopies: bool = False, DryRun: bool = False,
    ) -> dict[str, Any]:
        self._link_root(LinkRoot)
        self._inject_leftovers()
        self._finish_merges()
        world = self.world
        names = [] if SkipCheckpoints else (
            [self._vm_key(n) for n in VMName] if VMName else sorted(world.state["vms"]))
        keep = f"{Prefix}-{KeepRunId}" if KeepRunId else ""
        checkpoints = []
        for name in [n for n in names if n]:
            vm = world.state["vms"][name]
            for cp in list(vm["checkpoints"]):
                # Recovery checkpoints are another product's: hvbackup makes none.
                # This run's own checkpoint is kept, under either of its names.
                if not (cp["type"] != "Recovery"
                        and cp["name"].lower().startswith(Prefix.lower() + "-")
                        and cp["name"] not in (keep, f"{keep} (crash-consistent)")):
                    continue
                entry = {"vm": name, "id": cp["id"], "name": cp["name"], "type": cp["type"],
                         "removed": False, "merged": False, "remaining_files": [],
                         "error": None}
                if not DryRun:
                    # Merged once the .avhdx made when it was taken are gone (waited for).
                    merged = self._remove_checkpoint(name, vm, cp)
                    entry.update(removed=True, merged=merged,
                                 remaining_files=[] if merged else list(cp["avhdx"]))
                checkpoints.append(entry)
        shadows = []
        recorded = [] if SkipShadowCopies else _recorded_ids(world.state["shadow_record"])
        # An ID the record does not hold is not hvbackup's: it is left alone.
        ids = [] if SkipShadowCopies else sorted(set(recorded))
        cutoff = _utc(self._now() - timedelta(hours=ShadowOlderThanHours))
        for sid in ids:
            present = sid in world.state["shadow_copies"]
            shadow = world.state["shadow_copies"].get(sid, {})
            run = shadow.get("run", "")
            # Another job of this host may be reading its copy right now: only its own job's,
            # or one recorded long enough ago to be over, is a leftover.
            if run == KeepRunId or (run and shadow.get("owner") != Owner
                                    and shadow["created_utc"] >= cutoff):
                continue
            entry = {"id": sid, "run": run, "removed": False, "error": None}
            if DryRun:
                entry["present"] = present
            else:
                if present:
                    self._drop_shadow(sid)
                entry["removed"] = present
                _strike(world.state["shadow_record"], sid)
            shadows.append(entry)
        # Per-run shares of staging folders: a run that is over (its folder gone, or made
        # longer ago than ShadowOlderThanHours) left its share behind; a share of another
        # job running now is younger and its folder is there.
        run_shares = []
        staging_roots = [r.lower() + "\\" for r in (self.roots.staging if self.roots else ())]
        for share, info in sorted(world.state.get("run_shares", {}).items()):
            # hvbackup's by name (hvb-<run>-sql$ / -vm$) and by place (inside a staging root),
            # as the script finds them among every share of the host.
            named = re.fullmatch(r"hvb-([A-Za-z0-9-]+)-(sql|vm)\$", share, re.I)
            inside = any(info["path"].rstrip("\\").lower().startswith(r) for r in staging_roots)
            if not named or not inside or named.group(1) == KeepRunId:
                continue
            if self.local_path(info["path"]).exists() and info["created_utc"] >= cutoff:
                continue
            run_shares.append({"name": share, "path": info["path"],
                               "removed": not DryRun and self._unshare(share), "error": None})
        return {"ok": True, "dry_run": DryRun, "checkpoints": checkpoints, "shadow_copies": shadows,
                "run_shares": run_shares}

    def _vm_key(self, name: str) -> str | None:
        return next((k for k in self.world.state["vms"] if k.lower() == name.lower()), None)

    # -- SQL Server -----------------------------------------------------------------------

    def script_Invoke_HvbSqlBackup(
        self, *, Instance: str, StagingPath: str, RunId: str, Database: list[str] | None = None,
        ExcludeDatabase: list[str] | None = None, Compression: bool = False,
        TrustServerCertificate: bool = False, CommandTimeoutSeconds: int = 3600,
        ConnectTimeoutSeconds: int = 30, DryRun: bool = False,
    ) -> dict[str, Any]:
        entry = self.world.state["sql"].get(Instance)
        if entry is None:
            raise _ScriptError("SQL_CONNECT_FAILED", f"Cannot connect to SQL Server instance "
                               f"'{Instance}': a network-related or instance-specific error "
                               "occurred (simulated: no such instance).")
        self._root(StagingPath, "staging")
        databases = Database or ["all"]
        # Standard, Enterprise and Developer write compressed backups; Web and Express cannot
        # (EngineEdition is 2 for Web as for Standard: the edition decides).
        can_compress = edition_of(entry).backup_compression
        compress = Compression and can_compress
        # Without COMPRESSION or NO_COMPRESSION, BACKUP follows the server's "backup
        # compression default": the script always says which it wants.
        option = "COMPRESSION" if compress else "NO_COMPRESSION" if can_compress else ""
        excluded = ExcludeDatabase or []
        skipped: list[dict[str, str]] = []
        if "all" in databases:
            wanted = []
            for name, info in sorted(entry["databases"].items()):
                if name == "tempdb":
                    continue
                reason = _sql_unfit(name, info) or (
                    "system" if info["database_id"] <= 4 else
                    "read_only" if _sql_read_only_refused(info) else
                    "excluded" if name in excluded else None)
                if reason:
                    skipped.append({"name": name, "reason": reason, "state": info["state"]})
                else:
                    wanted.append(name)
        else:
            wanted = [d for d in databases if d not in excluded]
        target = f"{StagingPath}\\{RunId}"
        service = service_sid(Instance)
        if DryRun:
            return {"ok": True, "dry_run": True, "instance": Instance, "compression": compress,
                    "compression_requested": Compression, "staging": target,
                    "service_account": service,
                    "planned": [f"BACKUP DATABASE [{d}] WITH COPY_ONLY, CHECKSUM"
                                f"{', ' + option if option else ''} then RESTORE VERIFYONLY"
                                for d in wanted], "skipped": skipped}
        self.local_path(target).mkdir(parents=True, exist_ok=True)
        self._grant_modify(target, service)
        share = self._share_run_folder(target, f"hvb-{RunId}-sql$", RunId)
        results = []
        for name in wanted:
            item: dict[str, Any] = {"name": name, "file": None, "size_bytes": 0,
                                    "compressed": compress, "verified": False, "duration_s": 0.4,
                                    "error": None}
            info = entry["databases"].get(name)
            unfit = _sql_unfit(name, info) if info else None
            if info is None:
                item["error"] = {"code": "DB_NOT_FOUND", "message": f"Database '{name}' does not "
                                 f"exist on {Instance}."}
            elif unfit:
                why = (f"it is {info['state']}: only an ONLINE database can be backed up"
                       if unfit == "not_online" else _UNFIT_WHY[unfit])
                item["error"] = {"code": "DB_NOT_BACKUPABLE",
                                 "message": f"Database '{name}' on {Instance}: {why}."}
            elif _sql_read_only_refused(info):
                item["error"] = {"code": "DB_READ_ONLY", "message": f"Database '{name}' on "
                                 f"{Instance} is read-only and this login may not back it up: "
                                 "onboarding could not add its user there (a read-only database "
                                 "takes no new user). A DBA sets it READ_WRITE, reruns "
                                 "Initialize-HvbHost.ps1 and sets it READ_ONLY again, or removes "
                                 "it from databases."}
            elif not info["backup_operator"]:
                # Msg 262, as BACKUP says it to a login without db_backupoperator there.
                item["error"] = {"code": "SQL_BACKUP_FAILED", "message": f"BACKUP DATABASE "
                                 f"[{name}] failed: BACKUP DATABASE permission denied in "
                                 f"database '{name}'."}
            elif self._fault("staging-full", name) or (
                    self._free_bytes(target) < self.local_path(info["path"]).stat().st_size):
                volume = self._volume_of(target)
                free = 0 if self._fault("staging-full", name) else self._free_bytes(target)
                item["error"] = {"code": "STAGING_FULL", "message": f"The staging volume "
                                 f"{volume} of {target} has {free} bytes free; '{name}' needs "
                                 "more."}
            elif not self._may_write(target, service):
                # Msg 3201: BACKUP opens the file as the service, which needs the right.
                item["error"] = {"code": "SQL_BACKUP_FAILED", "message": f"BACKUP DATABASE "
                                 f"[{name}] failed: Cannot open backup device "
                                 f"'{target}\\{name}.bak'. Operating system error 5(Access is "
                                 "denied.). BACKUP DATABASE is terminating abnormally."}
            else:
                file = f"{target}\\{name}.bak"
                bak = self.local_path(file)
                simsql.write_dump(self.local_path(info["path"]), bak, name, _utc(self._now()),
                                  compress, f"{self.world.state['seed']}:{Instance}:{name}")
                if self._fault("verifyonly-failure", name):
                    simsql.damage(bak)
                if simsql.verify_dump(bak):
                    item.update(file=file, verified=True, size_bytes=bak.stat().st_size,
                                exposed=self._exposed(share, target, file))
                else:
                    item["error"] = {"code": "SQL_VERIFY_FAILED", "message": f"RESTORE VERIFYONLY "
                                     f"of [{name}] failed: the backup file is not usable: "
                                     "checksum mismatch (simulated)."}
            results.append(item)
        return {"ok": True, "instance": Instance, "edition": entry["edition"],
                "compression": compress, "compression_requested": Compression,
                "staging": target, "service_account": service, "databases": results,
                "skipped": skipped, "share": share}

    def _grant_modify(self, folder: str, principal: str) -> None:
        """Modify for ``principal`` on ``folder``, inherited below (an ACE as Set-Acl adds it).
        Grants on folders since deleted are forgotten."""
        acl = self.world.state.setdefault("acl", {})
        for path in [p for p in acl if not self.local_path(p).exists()]:
            del acl[path]
        acl.setdefault(folder.lower(), [])
        if principal not in acl[folder.lower()]:
            acl[folder.lower()].append(principal)

    def _may_write(self, folder: str, principal: str) -> bool:
        """Whether ``principal`` may create files in ``folder``: an ACE on it or a parent, or
        SQL Server's own folders (setup grants the service SID its data folders)."""
        acl = self.world.state.get("acl", {})
        path = PureWindowsPath(folder)
        return any(str(p).lower() == SQL_ROOT.lower() or principal in acl.get(str(p).lower(), [])
                   for p in (path, *path.parents))

    # -- per-run shares of staging folders ------------------------------------------------

    def _share_run_folder(self, folder: str, share: str, run: str) -> str:
        """As the scripts' Publish-HvbRunShare: ``folder`` shared as the hidden ``share``, read
        for the connected account only (share ACL and an inherited NTFS read ACE), no offline
        caching; idempotent (the same share of the same folder is kept, another folder's
        replaced). Recorded in the state, as Get-SmbShare would list it."""
        shares = self.world.state.setdefault("run_shares", {})
        self._grant_read(folder, CONNECTED_USER)
        if shares.get(share, {}).get("path", "").lower() != folder.lower():
            self._link(self.root / "shares" / share, self.local_path(folder))
            shares[share] = {"path": folder, "run": run, "reader": CONNECTED_USER,
                             "created_utc": _utc(self._now())}
        return share

    def _exposed(self, share: str, folder: str, path: str) -> str:
        """``path`` (inside ``folder``) as the orchestrator reads it: ``\\\\HOST\\share\\...``."""
        host = self.label.split("/")[-1].upper()
        return f"\\\\{host}\\{share}" + path[len(folder):]

    def _unshare(self, share: str) -> bool:
        """Remove-SmbShare: the share alone, never the folder behind it."""
        link = self.root / "shares" / share
        present = share in self.world.state.get("run_shares", {})
        self.world.state.get("run_shares", {}).pop(share, None)
        if link.is_symlink():
            link.unlink()
        return present

    def _grant_read(self, folder: str, principal: str) -> None:
        """Read for ``principal`` on ``folder``, inherited below (NTFS: the share's ACL alone
        does not let a non-administrator open the files)."""
        readers = self.world.state.setdefault("acl_read", {})
        readers.setdefault(folder.lower(), [])
        if principal not in readers[folder.lower()]:
            readers[folder.lower()].append(principal)

    def script_Remove_HvbStaging(self, *, StagingPath: str, RunId: str,
                                 DryRun: bool = False) -> dict[str, Any]:
        target = f"{self._root(StagingPath, 'staging')}\\{RunId}"
        local = self.local_path(target)
        present = local.exists()
        size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) if present else 0
        # The shares of the folder first (no reader left), then the folder.
        shares = [{"name": name, "removed": not DryRun and self._unshare(name)}
                  for name, info in sorted(self.world.state.get("run_shares", {}).items())
                  if info["path"].lower() == target.lower()]
        if present and not DryRun:
            shutil.rmtree(local)
            self.world.state.get("acl_read", {}).pop(target.lower(), None)
        return {"ok": True, "dry_run": DryRun, "path": target, "removed": present and not DryRun,
                "bytes_freed": 0 if DryRun else size, "shares": shares}

    def script_Restore_HvbSqlDatabase(
        self, *, Instance: str, BackupFile: str, DatabaseName: str, TargetName: str | None = None,
        DataPath: str | None = None, LogPath: str | None = None, Replace: bool = False,
        OverwriteProduction: bool = False, TrustServerCertificate: bool = False,
        CommandTimeoutSeconds: int = 3600, DryRun: bool = False,
    ) -> dict[str, Any]:
        # A fresh dump in staging, or one brought back from a baie into a restore folder.
        try:
            BackupFile = self._root(BackupFile, "restore")
        except simroots.RootRefused as exc:
            if exc.code != "PATH_NOT_ALLOWED":
                raise
            BackupFile = self._root(BackupFile, "staging")
        DataPath = DataPath and self._root(DataPath, "restore")
        LogPath = LogPath and self._root(LogPath, "restore")
        entry = self.world.state["sql"].get(Instance)
        if entry is None:
            raise _ScriptError("SQL_CONNECT_FAILED", f"Cannot connect to '{Instance}'.")
        if not self.local_path(BackupFile).exists():
            raise _ScriptError("PATH_NOT_FOUND", f"Backup file {BackupFile} does not exist.")
        target = TargetName or f"{DatabaseName}_restore_{self._now():%Y%m%d%H%M}"
        exists = target in entry["databases"]
        if exists and not Replace:
            raise _ScriptError("TARGET_EXISTS", f"Database '{target}' already exists on "
                               f"{Instance}; pick another -TargetName, or add -Replace.")
        # Only a database an earlier restore made beside the original carries the marker
        # (extended property hvbackup.restored); overwriting any other needs the second switch.
        ours = exists and bool(entry["databases"][target].get("restored_by_hvbackup"))
        if exists and not ours and not OverwriteProduction:
            raise _ScriptError("TARGET_NOT_HVBACKUP", f"Database '{target}' on {Instance} was "
                               "not made by an hvbackup restore: it may be production. "
                               "Overwriting it needs -Replace -OverwriteProduction (recorded), "
                               "after a copy of the current one.")
        overwrote = exists and not ours
        if not simsql.verify_dump(self.local_path(BackupFile)):
            raise _ScriptError("SQL_RESTORE_FAILED", f"RESTORE DATABASE [{target}] failed: the "
                               "backup set is damaged (checksum).")
        data_file = f"{DataPath or SQL_DATA}\\{target}_1.mdf"
        moves = [{"logical": DatabaseName, "to": data_file},
                 {"logical": f"{DatabaseName}_log", "to": f"{LogPath or SQL_DATA}\\{target}_2.ldf"}]
        if DryRun:
            return {"ok": True, "dry_run": True, "database": target, "moves": moves,
                    "planned": ["RESTORE DATABASE @target FROM DISK = @file WITH CHECKSUM, "
                                "RECOVERY, MOVE ..."], "replaced": exists,
                    "overwrote_production": overwrote}
        simsql.restore_dump(self.local_path(BackupFile), self.local_path(data_file))
        previous = entry["databases"].get(target, {})
        entry["databases"][target] = {
            "path": data_file, "recovery_model": "FULL",
            "database_id": previous.get("database_id") or next_database_id(entry),
            "state": "ONLINE", "is_in_standby": False, "source_database": None,
            "backup_operator": True,
            "restored_by_hvbackup": target != DatabaseName and not overwrote}
        return {"ok": True, "database": target, "instance": Instance, "moves": moves,
                "replaced": exists, "overwrote_production": overwrote}

    # -- shadow copies --------------------------------------------------------------------

    def script_New_HvbShadowCopy(
        self, *, Path: list[str], RunId: str, Owner: str = "hvbackup",
        LinkRoot: str = "C:\\ProgramData\\hvbackup\\shadow", DryRun: bool = False,
    ) -> dict[str, Any]:
        """As the script: a copy with writers (not ClientAccessible) per volume, mount-point
        volumes included, mounted under LinkRoot and shared as ``hvb-<run>-<n>$`` to the
        connected account only. The copy's device is a folder no drive path reaches: it is
        read through the share, as an SMB client must (a link to the device, what mklink made,
        could not be followed)."""
        paths = list(Path)
        LinkRoot = self._link_root(LinkRoot)
        for p in paths:
            self._root(p, "shares")
            if not self.local_path(p).is_dir():
                raise _ScriptError("PATH_NOT_FOUND", f"The folder {p} does not exist on "
                                   f"{self.label}.")
        world = self.world
        by_path = {p: self._volume_of(p) for p in paths}
        volumes = sorted(set(by_path.values()))
        if DryRun:
            return {"ok": True, "dry_run": True,
                    "planned": [f"shadow copy of {v} (writers involved) mounted at "
                                f"{LinkRoot}\\{RunId}-{i}, shared as hvb-{RunId}-{i}$"
                                for i, v in enumerate(volumes, 1)]}
        shadows = []
        made_now: list[str] = []  # this call's copies: removed if a later step fails
        for i, volume in enumerate(volumes, 1):
            mount, share = f"{LinkRoot}\\{RunId}-{i}", f"hvb-{RunId}-{i}$"
            sid = next((k for k, v in world.state["shadow_copies"].items()
                        if v["link"] == mount), None)
            if sid is None:
                sid = "{" + str(uuid.uuid4()).upper() + "}"
                # Recorded before anything can fail, one line as New-HvbShadowCopy.ps1 writes it.
                world.state["shadow_record"].append("\t".join(
                    (sid, RunId, Owner, _utc(self._now()), volume, mount, share)))
                n = world.state["shadow_seq"] = world.state.get("shadow_seq", 0) + 1
                device = self.root / "devices" / f"HarddiskVolumeShadowCopy{n}"
                device.mkdir(parents=True)
                # The frozen view: the folders asked for, as they are now, on the device. A
                # shadow copy is the volume's blocks: a link stays a link (a reparse point),
                # never the content of what it points to.
                for p in paths:
                    if by_path[p] == volume:
                        shutil.copytree(self.local_path(p), device / p[len(volume):],
                                        dirs_exist_ok=True, symlinks=True)
                world.state["shadow_copies"][sid] = {
                    "volume": volume, "created_utc": _utc(self._now()), "link": mount,
                    "share": share, "run": RunId, "owner": Owner,
                    "device_object": f"\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy{n}",
                    # The copy keeps the files' NTFS permissions as they were (simacl.py).
                    "ntfs_protected": simacl.protected_under(world.state, volume)}
                made_now.append(sid)
                if self._fault("expose-failure", volume):
                    # DiskShadow's "create" succeeded, its "expose" did not: the script finds
                    # the copy by the ID DiskShadow printed and removes it with this call's
                    # others, mount folders and shares included.
                    for made in made_now:
                        self._drop_shadow(made)
                        _strike(world.state["shadow_record"], made)
                    raise _ScriptError(
                        "VSS_LINK_FAILED", f"Shadow copy of {volume} failed (diskshadow exit "
                        f"code 1): * Shadow copy ID = {sid} %hvb{i}% ... The last operation "
                        "failed. Returned HRESULT: 0x80042306")
                # A volume mount point: crossed by the server itself.
                self._link(self.local_path(mount), device)
                self._link(self.root / "shares" / share, device)
            entry = world.state["shadow_copies"][sid]
            shadows.append({"id": sid, "volume": volume, "link": mount, "share": share,
                            "device_object": entry["device_object"], "writers": True,
                            "client_accessible": False})
        host = self.label.split("/")[-1].upper()
        exposed = [{"path": p, "exposed": f"\\\\{host}\\" + "\\".join(
                        x for x in (next(s["share"] for s in shadows if s["volume"] == by_path[p]),
                                    p[len(by_path[p]):].rstrip("\\")) if x)}
                   for p in paths]
        return {"ok": True, "shadows": shadows, "paths": exposed}

    def _volume_of(self, path: str) -> str:
        """The volume a folder is on: the deepest mount point on its path (``mount_points`` of
        the world's state, e.g. ``D:\\Mounts\\Data\\``), else its drive."""
        folder = path.rstrip("\\").upper() + "\\"
        mounts = [m for m in self.world.state.get("mount_points", [])
                  if folder.startswith(m.upper())]
        return max(mounts, key=len) if mounts else path[:3].upper()

    @staticmethod
    def _link(where: Path, device: Path) -> None:
        where.parent.mkdir(parents=True, exist_ok=True)
        if where.is_symlink():
            where.unlink()
        where.symlink_to(device, target_is_directory=True)

    def _drop_shadow(self, sid: str) -> None:
        shadow = self.world.state["shadow_copies"].pop(sid)
        for place in (self.local_path(shadow["link"]),
                      self.root / "shares" / shadow.get("share", "-")):
            if place.is_symlink():
                place.unlink()  # the mount point or share alone, never through it
        device = shadow["device_object"].rsplit("\\", 1)[-1]
        shutil.rmtree(self.root / "devices" / device, ignore_errors=True)

    def script_Remove_HvbShadowCopy(
        self, *, ShadowId: list[str], RunId: str, LinkPath: list[str] | None = None,
        ShareName: list[str] | None = None, DryRun: bool = False,
    ) -> dict[str, Any]:
        world = self.world
        recorded = set(_recorded_ids(world.state["shadow_record"]))
        # Only what shadow-copies.txt records: another product's copy, or a folder that is not
        # the mount folder of one of these copies, is refused before anything is removed.
        for sid in ShadowId:
            if sid not in recorded and sid in world.state["shadow_copies"]:
                raise _ScriptError("SHADOW_NOT_HVBACKUP", f"Shadow copy {sid} on {self.label} "
                                   "is not recorded in C:\\ProgramData\\hvbackup\\"
                                   "shadow-copies.txt: hvbackup did not make it, and leaves it "
                                   "alone.")
        mounts = {world.state["shadow_copies"][sid]["link"].lower() for sid in ShadowId
                  if sid in recorded and sid in world.state["shadow_copies"]}
        # Mount folders of this run by name: a call repeated after its record lines were struck.
        own_mount = re.compile(re.escape(f"{LINK_ROOT}\\{RunId}-") + r"[0-9]+", re.I)
        for link in LinkPath or []:
            # Decided before the disk is looked at: an absent folder and a refused one get the
            # same answer (no existence oracle).
            full = simroots._full(link)
            if not (full and (full.lower() in mounts or own_mount.fullmatch(full))):
                raise _ScriptError("PATH_NOT_ALLOWED", f"{link} is not a mount folder of "
                                   f"shadow copy {', '.join(ShadowId)} of run {RunId} on "
                                   f"{self.label}; hvbackup removes no other folder.")
        for name in ShareName or []:
            if not re.fullmatch(rf"hvb-{re.escape(RunId)}-[0-9]+\$", name, re.I):
                raise _ScriptError("SHARE_OTHER_RUN", f"The share {name} is not a shadow-copy "
                                   f"share of run {RunId} (hvb-{RunId}-<n>$) on {self.label}: "
                                   "another run's, or a staging share, is left alone.")
        shares = []
        for name in ShareName or []:
            # Share names are case-insensitive on Windows.
            shares_dir = self.root / "shares"
            local = next((p for p in shares_dir.iterdir() if p.name.lower() == name.lower()),
                         shares_dir / name) if shares_dir.is_dir() else shares_dir / name
            present = local.is_symlink()
            if present and not DryRun:
                local.unlink()
            shares.append({"name": name, "removed": present and not DryRun})
        shadows = []
        for sid in ShadowId:
            present = sid in world.state["shadow_copies"]
            if present and not DryRun:
                self._drop_shadow(sid)
            if not DryRun:
                _strike(world.state["shadow_record"], sid)
            shadows.append({"id": sid, "removed": present and not DryRun,
                            "already_absent": not present})
        links = []
        for link in LinkPath or []:
            local = self.local_path(link)
            present = local.is_symlink() or local.exists()
            if present and not DryRun:
                local.unlink() if local.is_symlink() else local.rmdir()
            links.append({"path": link, "removed": present and not DryRun})
        return {"ok": True, "dry_run": DryRun, "shares": shares, "links": links,
                "shadow_copies": shadows}

    # -- restore of a VM ------------------------------------------------------------------

    def script_Restore_HvbVm(
        self, *, RestorePath: str, NewName: str, Mode: str = "recreate",
        ConfigurationJson: str | None = None, DiskJson: str | None = None,
        SwitchName: str | None = None, DryRun: bool = False,
    ) -> dict[str, Any]:
        RestorePath = self._root(RestorePath, "restore")
        if not self.local_path(RestorePath).exists():
            raise _ScriptError("PATH_NOT_FOUND", f"{RestorePath} does not exist.")
        if self._vm_key(NewName):
            raise _ScriptError("VM_EXISTS", f"A VM named '{NewName}' already exists on "
                               f"{self.label}; choose another name.")
        if Mode == "recreate" and not (ConfigurationJson and DiskJson):
            raise _ScriptError("BAD_PARAMETER", "-Mode recreate needs -ConfigurationJson and "
                               "-DiskJson.")
        disks = json.loads(DiskJson) if DiskJson else []
        for disk in disks:
            for file in disk["chain"]:
                self._root(file, "restore")
                if not self.local_path(file).exists():
                    raise _ScriptError("PATH_NOT_FOUND", f"Restored disk file {file} is missing.")
        if DryRun:
            return {"ok": True, "dry_run": True, "planned": [f"create VM '{NewName}'",
                                                             f"attach {len(disks)} disk(s)"]}
        if Mode == "import":
            config, disks = self._exported(RestorePath)
        else:
            config = json.loads(ConfigurationJson or "{}")
        if SwitchName and SwitchName not in self._switches():
            raise _ScriptError("SWITCH_NOT_FOUND", f"No virtual switch named '{SwitchName}' on "
                               f"{self.label} (Get-VMSwitch lists them).")
        vm, not_restored = self._rebuild(config, disks, SwitchName, RestorePath,
                                         imported=Mode == "import")
        self.world.state["vms"][NewName] = vm
        return {"ok": True, "vm": NewName, "vm_id": vm["id"], "mode": Mode, "state": "Off",
                "not_restored": not_restored}

    def _switches(self) -> list[str]:
        switches: list[str] = self.world.state.get("switches", ["LAN"])
        return switches

    def _exported(self, restore_path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The configuration and disks of the export under ``restore_path`` (as written by
        New-HvbCheckpoint -Mode export)."""
        local = self.local_path(restore_path)
        vmcx = sorted(p for p in local.rglob("*.vmcx") if p.parent.name == "Virtual Machines")
        if not vmcx:
            raise _ScriptError("EXPORT_NOT_FOUND", f"No exported VM (Virtual Machines\\*.vmcx) "
                               f"under {restore_path}.")
        config: dict[str, Any] = json.loads(vmcx[0].read_text())
        folder = vmcx[0].parent.parent / "Virtual Hard Disks"
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        base = restore_path + "\\" + "\\".join(folder.relative_to(local).parts)
        return config, [{"controller_type": "SCSI", "controller_number": 0,
                         "controller_location": i, "chain": [f"{base}\\{n}"]}
                        for i, n in enumerate(names)]

    def _rebuild(self, config: dict[str, Any], disks: list[dict[str, Any]],
                 switch_name: str | None, restore_path: str, imported: bool = False,
                 ) -> tuple[dict[str, Any], list[str]]:
        """The new VM, built in the order and under the rules of Restore-HvbVm.ps1: a new
        VM has one SCSI controller (generation 2) or none (1); a disk goes only on a controller
        that exists; a switch must exist to be connected. Returns it and what was not restored."""
        not_restored: list[str] = []
        generation = config.get("generation", 2)
        vm: dict[str, Any] = {
            "id": str(uuid.uuid4()), "generation": generation,
            "cpu_count": config.get("cpu_count", 2),
            "memory_bytes": config.get("memory_startup_bytes", 4 * 1024**3), "state": "Off",
            "checkpoint_type": "Production", "config_path": restore_path, "disks": [],
            "checkpoints": [], "network_adapters": [],
            "scsi_controllers": 1 if generation == 2 else 0, "secure_boot": "Off",
            "secure_boot_template": "", "tpm_enabled": False,
        }
        if generation == 2:
            vm["secure_boot"] = config.get("secure_boot", "On")
            template = config.get("secure_boot_template") or ""
            vm["secure_boot_template"] = template or "MicrosoftWindows"
            if vm["secure_boot"] == "On" and not template:
                not_restored.append("Secure Boot template: not recorded by this backup; the "
                                    "default (MicrosoftWindows) is set, a Linux guest needs "
                                    "MicrosoftUEFICertificateAuthority.")
            if config.get("tpm_enabled"):
                vm["tpm_enabled"] = True
                not_restored.append("vTPM: enabled with a new key protector; what the original "
                                    "vTPM held (BitLocker keys, certificates) is not restored.")
            elif "tpm_enabled" not in config:
                not_restored.append("vTPM: not recorded by this backup; none is enabled.")
        needed = max([config.get("scsi_controllers", 0)] + [
            d["controller_number"] + 1 for d in disks if d["controller_type"] == "SCSI"])
        vm["scsi_controllers"] = max(vm["scsi_controllers"], needed)  # Add-VMScsiController
        for disk in disks:
            if disk["controller_type"] == "SCSI" and \
                    disk["controller_number"] >= vm["scsi_controllers"]:
                raise _ScriptError("VM_RESTORE_FAILED", f"Add-VMHardDiskDrive: the VM has no "
                                   f"SCSI controller {disk['controller_number']}.")
            vm["disks"].append({
                "path": disk["chain"][0],
                "size_bytes": self.local_path(disk["chain"][0]).stat().st_size,
                **{k: disk[k] for k in ("controller_type", "controller_number",
                                        "controller_location")}})
        for nic in config.get("network_adapters", []):
            switch = switch_name or nic.get("switch") or ""
            if switch and switch not in self._switches():
                not_restored.append(f"network adapter '{nic['name']}': no switch '{switch}' on "
                                    f"{self.label}, left disconnected.")
                switch = ""
            static = nic.get("mac") and nic.get("dynamic_mac") is False
            if nic.get("mac") and "dynamic_mac" not in nic:
                not_restored.append(f"network adapter '{nic['name']}': MAC address "
                                    f"{nic['mac']} not known to be static; a new dynamic one "
                                    "is used.")
            vlan = _vlan(nic)
            if (vlan["vlan_mode"], vlan["private_vlan_mode"] if vlan["vlan_mode"] == "Private"
                    else "") not in VLAN_MODES:
                not_restored.append(f"network adapter '{nic['name']}': VLAN mode "
                                    f"'{vlan['vlan_mode']}' {vlan['private_vlan_mode']} not "
                                    "known to this script; the adapter is untagged "
                                    "(Set-VMNetworkAdapterVlan).")
                vlan = _vlan({})
            vm["network_adapters"].append({
                "name": nic["name"], "switch": switch, "dynamic_mac": not static,
                "mac": nic["mac"] if static else "00155D" + uuid.uuid4().hex[:6].upper(),
                "vlan_id": int(nic.get("vlan_id", 0)), **vlan})
        self._restore_dvds_and_boot(config, vm, not_restored, imported)
        self._restore_automatic_actions(config, vm, not_restored, imported)
        for nic in vm["network_adapters"]:
            # A static MAC kept is the original's: said when a VM of this host has it.
            same = sorted(name for name, other in self.world.state["vms"].items()
                          if any(n["mac"] == nic["mac"] for n in other["network_adapters"]))
            if not nic["dynamic_mac"] and same:
                not_restored.append(
                    f"network adapter '{nic['name']}': its static MAC address {nic['mac']} is "
                    f"also that of VM {', '.join(same)} on {self.label}: never run both on the "
                    "same network, or give this one a new address "
                    "(Set-VMNetworkAdapter -DynamicMacAddress).")
        return vm, not_restored

    def _restore_dvds_and_boot(self, config: dict[str, Any], vm: dict[str, Any],
                               not_restored: list[str], imported: bool) -> None:
        """DVD drives at their locations (an ISO not on this host: the drive left empty), then
        the boot order by device: Import-VM keeps both as the export has them."""
        if "dvd_drives" not in config:
            not_restored.append("DVD drives: not recorded by this backup; none is added.")
        vm["dvd_drives"] = []
        for dvd in config.get("dvd_drives", []):
            iso = dvd.get("path") or ""
            if iso and not imported and not self.local_path(iso).is_file():
                not_restored.append(
                    f"DVD drive {dvd['controller_type']} {dvd['controller_number']}:"
                    f"{dvd['controller_location']}: the ISO {iso} is not on {self.label}; the "
                    "drive is left empty (Set-VMDvdDrive -Path).")
                iso = ""
            vm["dvd_drives"].append({**dvd, "path": iso})
        if "boot_order" not in config:
            not_restored.append("boot order: not recorded by this backup; Hyper-V's default "
                                "order is kept.")
            vm["boot_order"] = _default_boot_order(vm)
            return
        if vm["generation"] != 2 or imported:
            vm["boot_order"] = [dict(e) for e in config["boot_order"]]
            return
        entries = _boot_devices(vm)
        wanted = []
        for want in config["boot_order"]:
            found = next((e for e in entries if _same_device(e, want)), None)
            if found is not None:
                wanted.append(found)
            elif want["kind"] == "file":
                not_restored.append(
                    f"boot entry '{want.get('description', '')}' ({want.get('path', '')}): a "
                    "loader entry the guest's own boot manager writes; it comes back at the "
                    "first start, after the disks.")
            else:
                not_restored.append(f"boot entry '{want.get('description', '')}': its device "
                                    "is not on the new VM; left out of the boot order.")
        vm["boot_order"] = wanted + [e for e in entries if e not in wanted]

    @staticmethod
    def _restore_automatic_actions(config: dict[str, Any], vm: dict[str, Any],
                                   not_restored: list[str], imported: bool) -> None:
        """As recorded, except a start action Start: a copy that started with the host would
        run beside the original."""
        if "automatic_start_action" not in config:
            if not imported:
                not_restored.append("automatic start and stop actions: not recorded by this "
                                    "backup; Hyper-V's defaults are kept.")
            vm.update(automatic_start_action="StartIfRunning", automatic_start_delay=0,
                      automatic_stop_action="Save")
            return
        vm.update(automatic_start_action=config["automatic_start_action"],
                  automatic_start_delay=int(config.get("automatic_start_delay", 0)),
                  automatic_stop_action=config.get("automatic_stop_action", "Save"))
        if vm["automatic_start_action"] == "Start":
            vm["automatic_start_action"] = "Nothing"
            not_restored.append("automatic start action: it was Start; the copy is set to "
                                "Nothing so that it never starts with the host beside the "
                                "original (Set-VM -AutomaticStartAction Start once it replaces "
                                "it).")


def _hardware(vm: dict[str, Any]) -> dict[str, Any]:
    """What New-HvbCheckpoint.ps1 records of a VM's firmware, vTPM, controllers and adapters
    (older simulated VMs lack the keys: the defaults of a new generation 2 VM)."""
    gen2 = vm["generation"] == 2
    return {
        "secure_boot": vm.get("secure_boot", "On") if gen2 else "Off",
        "secure_boot_template": vm.get("secure_boot_template", "MicrosoftWindows") if gen2
        else "",
        "tpm_enabled": gen2 and bool(vm.get("tpm_enabled", False)),
        "scsi_controllers": vm.get("scsi_controllers", 1 if gen2 else 0),
        "network_adapters": [{"name": n["name"], "switch": n["switch"], "mac": n["mac"],
                              "dynamic_mac": n.get("dynamic_mac", True),
                              "vlan_id": n["vlan_id"], **_vlan(n)}
                             for n in vm["network_adapters"]],
        "dvd_drives": [dict(d) for d in vm.get("dvd_drives", [])],
        "boot_order": [dict(e) for e in vm.get("boot_order") or _default_boot_order(vm)],
        # Hyper-V's defaults for a new VM.
        "automatic_start_action": vm.get("automatic_start_action", "StartIfRunning"),
        "automatic_start_delay": int(vm.get("automatic_start_delay", 0)),
        "automatic_stop_action": vm.get("automatic_stop_action", "Save"),
    }


def _vlan(nic: dict[str, Any]) -> dict[str, Any]:
    """A port's VLAN setting as Get-VMNetworkAdapterVlan gives it (the modes are exclusive:
    Untagged, Access, Trunk, Private with Isolated, Community or Promiscuous)."""
    return {"vlan_mode": nic.get("vlan_mode") or ("Access" if nic.get("vlan_id") else
                                                  "Untagged"),
            "native_vlan_id": int(nic.get("native_vlan_id", 0)),
            "allowed_vlan_ids": nic.get("allowed_vlan_ids", ""),
            "private_vlan_mode": nic.get("private_vlan_mode", ""),
            "primary_vlan_id": int(nic.get("primary_vlan_id", 0)),
            "secondary_vlan_id": int(nic.get("secondary_vlan_id", 0)),
            "secondary_vlan_ids": nic.get("secondary_vlan_ids", "")}


VLAN_MODES = {("Untagged", ""), ("Access", ""), ("Trunk", ""), ("Private", "Isolated"),
              ("Private", "Community"), ("Private", "Promiscuous")}


def _boot_devices(vm: dict[str, Any]) -> list[dict[str, Any]]:
    """A generation 2 VM's boot entries for its devices, in Hyper-V's order for a new VM
    (drives as attached, then network adapters)."""
    drives = [{"kind": kind, **{k: d[k] for k in ("controller_type", "controller_number",
                                                   "controller_location")},
               "description": "EFI SCSI Device"}
              for kind, key in (("disk", "disks"), ("dvd", "dvd_drives"))
              for d in vm.get(key, []) if "controller_type" in d]
    return drives + [{"kind": "network", "adapter": n["name"], "description": "EFI Network"}
                     for n in vm["network_adapters"]]


def _default_boot_order(vm: dict[str, Any]) -> list[dict[str, Any]]:
    if vm["generation"] != 2:
        return [{"kind": "bios", "device": d} for d in ("CD", "IDE", "LegacyNetworkAdapter",
                                                        "Floppy")]
    return _boot_devices(vm)


def _same_device(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["kind"] != b["kind"]:
        return False
    if a["kind"] == "network":
        return bool(a.get("adapter") == b.get("adapter"))
    return all(a.get(k) == b.get(k) for k in ("controller_type", "controller_number",
                                              "controller_location"))
