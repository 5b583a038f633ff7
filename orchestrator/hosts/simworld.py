"""The world of a simulated Hyper-V host: its files, and how they change from day to day.

A simulated host lives in one folder. Windows paths map to it drive by drive
(``D:\\Hyper-V\\ERP01.vhdx`` is ``<folder>/volumes/D/Hyper-V/ERP01.vhdx``), so that scripts
report Windows paths exactly as a real host does, and the orchestrator reads them through
:meth:`SimWorld.local_path`, the way it reads a real host's files over SMB.

Everything is deterministic: the content of each day depends only on the seed, the object and
the date, so tests can recompute what the host held on any day. State is kept in
``state.json`` so that successive runs see one continuous host.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path, PureWindowsPath
from typing import Any

from orchestrator.hosts import simfiles, simsql

BLOCK = 64 * 1024
HYPERV_ROOT = "D:\\Hyper-V"
SQL_ROOT = "D:\\SQL"
DEFAULT_DATABASES = ("COMPTA", "PAIE")
SYSTEM_DATABASES = ("master", "tempdb", "model", "msdb")  # database_id 1 to 4
_WORDS = (b"facture client commande livraison stock article remise total TVA echeance "
          b"reglement fournisseur devis avoir compte journal ecriture lettrage ")


@dataclass
class WorldSpec:
    """What the simulated host holds, derived from the jobs that name it."""

    vms: list[str] = field(default_factory=list)
    sql: dict[str, list[str]] = field(default_factory=dict)  # instance -> databases ([] = defaults)
    shares: list[str] = field(default_factory=list)
    seed: int = 1
    vm_disk_mb: int = 256
    daily_change_percent: float = 2.0
    share_files: int = 200
    share_large_files_mb: list[int] = field(default_factory=list)
    sql_database_mb: list[int] = field(default_factory=lambda: [2])  # in name order; last repeats
    sql_edition: str = "standard"
    passthrough_vms: list[str] = field(default_factory=list)  # VMs with a physical disk too


@dataclass(frozen=True)
class Edition:
    """A SQL Server edition as SERVERPROPERTY reports it, and what it can do (sql-docs
    serverproperty-transact-sql.md; editions-and-components-of-sql-server-2022.md, "RDBMS high
    availability": backup compression and database snapshots on Enterprise and Standard, not on
    Web nor Express; Developer has every Enterprise feature)."""

    name: str  # SERVERPROPERTY('Edition')
    engine_edition: int  # SERVERPROPERTY('EngineEdition'): 2 for Standard, Web and BI alike
    edition_id: int  # SERVERPROPERTY('EditionID')
    backup_compression: bool
    database_snapshots: bool


EDITIONS = {
    "standard": Edition("Standard Edition (64-bit)", 2, -1534726760, True, True),
    "web": Edition("Web Edition (64-bit)", 2, 1293598313, False, False),
    "enterprise": Edition("Enterprise Edition: Core-based Licensing (64-bit)", 3, 1872460670,
                          True, True),
    "developer": Edition("Developer Edition (64-bit)", 3, -2117995310, True, True),
    "express": Edition("Express Edition (64-bit)", 4, -1592396055, False, False),
}


def service_sid(instance: str) -> str:
    """The per-service SID of an instance's SQL Server service, as an account name
    (configure-windows-service-accounts-and-permissions.md, "Service SID")."""
    _, _, name = instance.partition("\\")
    return f"NT SERVICE\\MSSQL${name}" if name and name.upper() != "MSSQLSERVER" \
        else "NT SERVICE\\MSSQLSERVER"


def edition_of(entry: dict[str, Any]) -> Edition:
    """The edition of a simulated instance (``state["sql"][instance]``)."""
    return next((e for e in EDITIONS.values() if e.name == entry["edition"]),
                EDITIONS["express"])


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def _compressible(rng: random.Random, size: int) -> bytes:
    start = rng.randrange(len(_WORDS))
    text = (_WORDS[start:] + _WORDS[:start]) * (size // len(_WORDS) + 1)
    head = rng.randbytes(16)
    return (head + text)[:size]


def _block(rng: random.Random, kind: float) -> bytes | None:
    """A 64 KiB block: ~35 % empty (left as a hole), ~35 % text-like, ~30 % random."""
    if kind < 0.35:
        return None
    if kind < 0.70:
        return _compressible(rng, BLOCK)
    return rng.randbytes(BLOCK)


def volume_path(root: Path, windows_path: str) -> Path:
    """Where a drive path (``D:\\...``) of the simulated host kept in ``root`` lives on the
    local disk: its volumes are folders (``volumes/D/...``); a share of the host
    (``\\\\HOST\\share\\...``, whatever name the host is given) is ``shares/<share>/...``."""
    if windows_path.startswith("\\\\"):
        parts = [p for p in windows_path[2:].split("\\") if p]
        if len(parts) < 2:
            raise ValueError(f"not a share path: {windows_path}")
        return root.joinpath("shares", *parts[1:])
    win = PureWindowsPath(windows_path)
    drive = win.drive.rstrip(":").upper()
    if not drive or len(drive) != 1:
        raise ValueError(f"not a drive path: {windows_path}")
    return root.joinpath("volumes", drive, *win.parts[1:])


class SimWorld:
    """Files and state of one simulated host (see module docstring)."""

    def __init__(self, root: Path, spec: WorldSpec, today: date) -> None:
        self.root = root
        self.spec = spec
        self.state_file = root / "state.json"
        if self.state_file.exists():
            self.state: dict[str, Any] = json.loads(self.state_file.read_text())
        else:
            self.state = {"version": 1, "seed": spec.seed, "day": today.isoformat(), "vms": {},
                          "sql": {}, "shares": {}, "shadow_copies": {}, "shadow_record": []}
        self._ensure_objects()
        self.advance_to(today)
        self.save()

    # -- paths ----------------------------------------------------------------------------

    def local_path(self, windows_path: str) -> Path:
        """Where a Windows path of this host lives on the local disk."""
        return volume_path(self.root, windows_path)

    def save(self) -> None:
        tmp = self.state_file.with_name(f".state.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    # -- NTFS permissions, as users leave them --------------------------------------------

    def ntfs_protect(self, windows_path: str) -> None:
        """Disable inheritance on a file or folder and leave it to Administrators and SYSTEM
        (a private folder): the onboarded account's Read on the files root no longer reaches
        it (orchestrator/hosts/simacl.py)."""
        protected = self.state.setdefault("ntfs_protected", [])
        if windows_path not in protected:
            protected.append(windows_path)
        self.save()

    # -- SQL Server states, as a DBA leaves them -----------------------------------------

    def sql_snapshot(self, instance: str, source: str, name: str) -> None:
        """``CREATE DATABASE name AS SNAPSHOT OF source``; raises ValueError on an edition
        without database snapshots (Web, Express)."""
        entry = self.state["sql"][instance]
        if not edition_of(entry).database_snapshots:
            raise ValueError(f"{entry['edition']} has no database snapshots")
        origin = entry["databases"][source]
        entry["databases"][name] = {
            "path": origin["path"], "recovery_model": origin["recovery_model"],
            "database_id": next_database_id(entry), "state": "ONLINE", "is_in_standby": False,
            "source_database": source, "backup_operator": origin["backup_operator"]}
        self.save()

    def sql_set_state(self, instance: str, name: str, state: str = "ONLINE",
                      standby: bool = False) -> None:
        """``ALTER DATABASE ... SET OFFLINE`` and the like (``state`` as sys.databases
        state_desc), or ``RESTORE LOG ... WITH STANDBY`` (ONLINE, read-only, standby)."""
        info = self.state["sql"][instance]["databases"][name]
        info.update(state=state, is_in_standby=standby)
        self.save()

    def sql_set_read_only(self, instance: str, name: str, read_only: bool = True,
                          onboarded_since: bool = False) -> None:
        """``ALTER DATABASE ... SET READ_ONLY`` (or ``READ_WRITE``). A database made read-only
        after onboarding keeps the hvbackup-sql user onboarding gave it; ``onboarded_since``
        says onboarding ran while it was read-only, which could add no user to it (a read-only
        database is not modified; Initialize-HvbHost.ps1 grants writable databases only)."""
        info = self.state["sql"][instance]["databases"][name]
        info["is_read_only"] = read_only
        if read_only and onboarded_since:
            info["backup_operator"] = False
        self.save()

    # -- creation -------------------------------------------------------------------------

    def _ensure_objects(self) -> None:
        seed = self.state["seed"]
        for vm in self.spec.vms:
            if vm in self.state["vms"]:
                continue
            vm_dir = f"{HYPERV_ROOT}\\{vm}"
            disk = f"{vm_dir}\\Virtual Hard Disks\\{vm}.vhdx"
            size = self.spec.vm_disk_mb * 1024 * 1024
            self._write_image(self.local_path(disk), size, _rng(seed, vm, "initial"))
            rng = _rng(seed, vm, "identity")
            self.state["vms"][vm] = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "generation": 2, "cpu_count": 2 + rng.randrange(3),
                "memory_bytes": (4 + 4 * rng.randrange(3)) * 1024**3, "state": "Running",
                "checkpoint_type": "Production", "config_path": vm_dir,
                "disks": [{"path": disk, "size_bytes": size}], "checkpoints": [],
                # A pass-through disk: a physical disk of the host, described, not a file.
                "passthrough": ["Disk 2 30.00 GB Bus 0 Lun 1 Target 0"]
                if vm in self.spec.passthrough_vms else [],
                "network_adapters": [{"name": "Network Adapter", "switch": "LAN",
                                      "mac": "00155D" + rng.randbytes(3).hex().upper(),
                                      "vlan_id": 0}],
            }
        for instance, names in self.spec.sql.items():
            edition = EDITIONS[self.spec.sql_edition]
            entry = self.state["sql"].setdefault(instance, {
                "edition": edition.name, "engine_edition": edition.engine_edition,
                "version": "16.0.4135.4", "databases": {},
            })
            sizes = self.spec.sql_database_mb or [2]
            for database_id, db in enumerate(SYSTEM_DATABASES, 1):
                if db not in entry["databases"]:
                    path = f"{SQL_ROOT}\\{_safe(instance)}\\{db}.mdf"
                    made = simsql.create_database(self.local_path(path), 0,
                                                  f"{seed}:{instance}:{db}")
                    entry["databases"][db] = {
                        "path": path, "recovery_model": "SIMPLE", **made,
                        "database_id": database_id}
            for index, db in enumerate(names or list(DEFAULT_DATABASES)):
                if db in entry["databases"]:
                    continue
                path = f"{SQL_ROOT}\\{_safe(instance)}\\{db}.mdf"
                size = sizes[min(index, len(sizes) - 1)] * 1024 * 1024
                made = simsql.create_database(self.local_path(path), size,
                                              f"{seed}:{instance}:{db}")
                entry["databases"][db] = {"path": path, "recovery_model": "FULL", **made}
            for info in entry["databases"].values():  # states written before these keys
                info.setdefault("database_id", next_database_id(entry))
                info.setdefault("state", "ONLINE")
                info.setdefault("is_in_standby", False)
                info.setdefault("is_read_only", False)
                info.setdefault("source_database", None)
                # The hvbackup-sql login is a db_backupoperator where onboarding granted it:
                # every database but tempdb (powershell/onboarding/Initialize-HvbHost.ps1).
                info.setdefault("backup_operator", True)
        for share in self.spec.shares:
            if share in self.state["shares"]:
                continue
            folder = self.local_path(share)
            folder.mkdir(parents=True, exist_ok=True)
            rng = _rng(seed, share, "initial")
            for i in range(self.spec.share_files):
                self._write_share_file(folder, f"dossier{i % 7}/document-{i:05d}.txt", rng)
            large = []
            for i, size_mb in enumerate(self.spec.share_large_files_mb):
                name = simfiles.name_of(i)
                simfiles.create(self.local_path(f"{share}\\{name}"), size_mb * 1024 * 1024,
                                f"{seed}:{share}:{name}")
                large.append(name)
            self.state["shares"][share] = {"next_file": self.spec.share_files, "large": large}

    @staticmethod
    def _write_image(path: Path, size: int, rng: random.Random) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            f.truncate(size)  # sparse: empty blocks stay holes
            for index in range(size // BLOCK):
                data = _block(rng, rng.random())
                if data is not None:
                    f.seek(index * BLOCK)
                    f.write(data)

    @staticmethod
    def _write_share_file(folder: Path, name: str, rng: random.Random) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        size = int(rng.paretovariate(1.2) * 2000) % 2_000_000
        path.write_bytes(_compressible(rng, size) if rng.random() < 0.7 else rng.randbytes(size))

    # -- days -----------------------------------------------------------------------------

    @property
    def day(self) -> date:
        return date.fromisoformat(self.state["day"])

    def advance_to(self, today: date) -> None:
        """Apply one day of changes for every day from the last one seen up to ``today``."""
        current = self.day
        while current < today:
            current += timedelta(days=1)
            self._one_day(current)
            self.state["day"] = current.isoformat()

    def _one_day(self, day: date) -> None:
        seed = self.state["seed"]
        for name, vm in self.state["vms"].items():
            if vm["state"] != "Running":
                continue  # a VM that is off does not write
            for disk in vm["disks"]:
                path = self.local_path(disk["path"])
                blocks = disk["size_bytes"] // BLOCK
                rng = _rng(seed, name, disk["path"], day)
                changed = max(1, round(blocks * self.spec.daily_change_percent / 100))
                with path.open("r+b") as f:
                    for index in rng.sample(range(blocks), min(changed, blocks)):
                        data = _block(rng, 0.35 + rng.random() * 0.65)
                        assert data is not None
                        f.seek(index * BLOCK)
                        f.write(data)
        for instance, entry in self.state["sql"].items():
            for db, info in entry["databases"].items():
                if info.get("source_database") or info.get("state", "ONLINE") != "ONLINE":
                    continue  # a snapshot is its source frozen; an offline database is shut
                simsql.change_database(self.local_path(info["path"]), info,
                                       f"{seed}:{instance}:{db}:{day}")
        for share, info in self.state["shares"].items():
            folder = self.local_path(share)
            rng = _rng(seed, share, day)
            large = [self.local_path(f"{share}\\{name}") for name in info.get("large", [])]
            for path in large:
                if path.exists():
                    simfiles.change(path, f"{seed}:{share}:{path.name}:{day}")
            files = sorted(p for p in folder.rglob("*") if p.is_file() and p not in large)
            for victim in rng.sample(files, len(files) // 200):
                victim.unlink()
            for changed in rng.sample(files, len(files) // 50):
                if changed.exists():
                    with changed.open("ab") as f:
                        f.write(_compressible(rng, 500 + rng.randrange(5000)))
            for _ in range(max(1, len(files) // 100)):
                n = info["next_file"]
                info["next_file"] = n + 1
                self._write_share_file(folder, f"dossier{n % 7}/document-{n:05d}.txt", rng)


def next_database_id(entry: dict[str, Any]) -> int:
    """The database_id SQL Server gives the next database of the instance ``entry``."""
    return max((d.get("database_id", 0) for d in entry["databases"].values()), default=4) + 1


def _safe(instance: str) -> str:
    return instance.replace("\\", "_")
