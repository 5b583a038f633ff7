"""The simulated SQL Server and shares at realistic sizes: data files made of pages that change
as a database does, dumps whose bytes change as SQL Server's do (compressed or not), large
share files, all handled a megabyte at a time."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts import simroots, simsql
from orchestrator.hosts.simulated import Fault, SimulatedHost
from orchestrator.hosts.simworld import WorldSpec
from tests.conftest import REPO

PAGE = 8192
MDF = "D:\\SQL\\SQL01_COMPTA\\COMPTA.mdf"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))


# Onboarded with D:\s as a staging root, the folder these tests stage into.
ROOTS = simroots.onboard(["D:\\s", "D:\\hvbackup-staging"], ["D:\\Partages"], ["D:\\Restore"])


def make_host(root: Path, clock: FrozenClock, *faults: Fault, sizes: tuple[int, ...] = (4, 1),
              edition: str = "standard", large: tuple[int, ...] = ()) -> SimulatedHost:
    spec = WorldSpec(sql={"SQL01\\COMPTA": []}, shares=["D:\\Partages"], share_files=20,
                     sql_database_mb=list(sizes), sql_edition=edition,
                     share_large_files_mb=list(large))
    return SimulatedHost("acme/hv01", root, spec, now=clock.now,
                         today=lambda: clock.now().date(), faults=faults, sleep=lambda s: None,
                         roots=ROOTS)


def dump(host: SimulatedHost, run: str, **params: object) -> Path:
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId=run, Database=["COMPTA"], **params)
    assert result["databases"][0]["verified"], result
    return host.local_path(result["databases"][0]["file"])


def sha(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + PAGE] for i in range(0, len(data), PAGE)]


def test_databases_have_the_sizes_asked_and_look_like_data_files(tmp_path: Path,
                                                                 clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, sizes=(4, 1))
    sizes = {d["name"]: d["size_bytes"] for d in
             host.run("Get-HvbInventory")["sql"][0]["databases"]}
    assert sizes == {"COMPTA": 4 * 1024 * 1024, "PAIE": 1024 * 1024,  # and the system ones
                     "master": 16 * PAGE, "model": 16 * PAGE, "msdb": 16 * PAGE}
    mdf = pages(host.local_path(MDF))
    # The 96-byte page header: page id at byte 12, slot count at 24, LSN at 30, checksum at 92.
    assert [struct.unpack_from("<I", p, 12)[0] for p in mdf] == list(range(len(mdf)))
    assert all(struct.unpack_from("<I", p, 92)[0] == zlib.crc32(p[:92] + bytes(4) + p[96:])
               for p in mdf)
    for p in mdf[16:48]:  # data pages: rows from the top, free space, slot array at the end
        slots = struct.unpack_from("<H", p, 24)[0]
        offsets = struct.unpack_from(f"<{slots}H", p, PAGE - 2 * slots)
        assert slots > 10 and sorted(offsets, reverse=True) == list(offsets)
        assert offsets[-1] == 96 and bytes(200) in p
    assert b"facture" in b"".join(mdf[16:32])
    raw = b"".join(mdf)
    ratio = len(raw) / len(zstandard.ZstdCompressor(level=3).compress(raw))
    assert 2.0 <= ratio <= 3.0, ratio


def test_a_day_rewrites_hot_regions_a_few_pages_and_appends(tmp_path: Path,
                                                            clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, sizes=(8,))
    host.run("Get-HvbInventory")
    before = pages(host.local_path(MDF))
    clock.advance(timedelta(days=1))
    host.run("Get-HvbInventory")
    after = pages(host.local_path(MDF))
    changed = [i for i, p in enumerate(before) if after[i] != p]
    assert len(after) - len(before) == len(before) // 500  # grows 0.2 % a day
    assert 0.002 * len(before) < len(changed) < 0.03 * len(before)
    runs = sum(1 for i in changed if i - 1 not in changed)
    assert runs <= 3 + 2 + 1, "hot regions, a couple of scattered pages, the file header"
    newest = min(simsql.page_lsn(after[i]) for i in changed)
    assert all(simsql.page_lsn(p) < newest for i, p in enumerate(after[:len(before)])
               if i not in changed), "changed pages carry the day's LSNs"


def _same_blocks(a: Path, b: Path) -> float:
    """Share of 8 KiB blocks equal at the same offset, past the descriptor block."""
    x, y = a.read_bytes()[simsql.DESCRIPTOR:], b.read_bytes()[simsql.DESCRIPTOR:]
    blocks = range(0, min(len(x), len(y)) - PAGE, PAGE)
    return sum(x[i:i + PAGE] == y[i:i + PAGE] for i in blocks) / len(blocks)


def test_uncompressed_dumps_change_where_pages_changed_compressed_ones_everywhere(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, sizes=(8,))
    first = {c: dump(host, f"a{c}", Compression=c) for c in (False, True)}
    kept = {c: tmp_path / f"night1-{c}.bak" for c in first}
    for c, path in first.items():
        path.rename(kept[c])
    clock.advance(timedelta(days=1))
    second = {c: dump(host, f"b{c}", Compression=c) for c in (False, True)}
    assert _same_blocks(kept[False], second[False]) > 0.95
    assert _same_blocks(kept[True], second[True]) < 0.05
    assert second[True].stat().st_size < 0.7 * second[False].stat().st_size


def test_compression_only_when_asked_and_never_on_express(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    plain = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                     RunId="r1", DryRun=True)
    assert plain["planned"][0] == ("BACKUP DATABASE [COMPTA] WITH COPY_ONLY, CHECKSUM, "
                                   "NO_COMPRESSION then RESTORE VERIFYONLY")
    asked = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                     RunId="r1", Compression=True)
    assert (asked["compression"], asked["compression_requested"]) == (True, True)
    assert all(d["compressed"] and d["verified"] for d in asked["databases"])
    express = make_host(tmp_path / "express", clock, edition="express")
    result = express.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                         RunId="r1", Compression=True)
    assert result["edition"] == "Express Edition (64-bit)"
    assert (result["compression"], result["compression_requested"]) == (False, True)
    assert all(not d["compressed"] and d["verified"] for d in result["databases"])


def test_web_edition_cannot_compress_although_its_engine_edition_is_standards(
        tmp_path: Path, clock: FrozenClock) -> None:
    # SERVERPROPERTY('EngineEdition') is 2 for Standard, Web and BI; Web writes no compressed
    # backup (editions-and-components-of-sql-server-2022.md): COMPRESSION would fail there.
    web = make_host(tmp_path, clock, edition="web")
    inventory = web.run("Get-HvbInventory")["sql"][0]
    assert (inventory["edition"], inventory["engine_edition"]) == ("Web Edition (64-bit)", 2)
    assert inventory["supports_compression"] is False
    planned = web.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Compression=True, DryRun=True)["planned"]
    assert planned[0] == "BACKUP DATABASE [COMPTA] WITH COPY_ONLY, CHECKSUM then RESTORE VERIFYONLY"
    result = web.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                     RunId="r1", Compression=True)
    assert (result["compression"], result["compression_requested"]) == (False, True)
    assert all(not d["compressed"] and d["verified"] for d in result["databases"])


@pytest.mark.parametrize("compression", [False, True])
def test_restore_gives_back_the_database_byte_for_byte(tmp_path: Path, clock: FrozenClock,
                                                       compression: bool) -> None:
    host = make_host(tmp_path, clock)
    bak = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                   RunId="r1", Compression=compression)["databases"][0]["file"]
    restored = host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA", BackupFile=bak,
                        DatabaseName="COMPTA", TargetName="COMPTA_copie")
    assert sha(host.local_path(restored["moves"][0]["to"])) == sha(host.local_path(MDF))


@pytest.mark.parametrize("compression", [False, True])
def test_a_damaged_dump_fails_verifyonly(tmp_path: Path, clock: FrozenClock,
                                         compression: bool) -> None:
    host = make_host(tmp_path, clock, Fault("verifyonly-failure", "COMPTA"))
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Compression=compression)
    errors = {d["name"]: d["error"] and d["error"]["code"] for d in result["databases"]}
    assert errors == {"COMPTA": "SQL_VERIFY_FAILED", "PAIE": None}
    bak = host.local_path("D:\\s\\r1\\COMPTA.bak")
    with pytest.raises(ScriptFailed, match="SQL_RESTORE_FAILED"):
        host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA",
                 BackupFile="D:\\s\\r1\\COMPTA.bak", DatabaseName="COMPTA")
    assert bak.exists()


def test_dumps_days_and_restores_hold_a_megabyte_at_a_time(tmp_path: Path,
                                                          clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, sizes=(32,), large=(16,))
    host.run("Get-HvbInventory")  # the host's files are made (not measured)
    tracemalloc.start()
    try:
        clock.advance(timedelta(days=1))
        host.run("Get-HvbInventory")  # a day of changes on the database and the large file
        for compression in (False, True):
            bak = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                           StagingPath="D:\\s", RunId=f"r{compression:d}",
                           Compression=compression)["databases"][0]["file"]
            host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA", BackupFile=bak,
                     DatabaseName="COMPTA", TargetName=f"COMPTA_{compression:d}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 32 MB database"


def test_shares_hold_large_files_that_change_as_theirs_do(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock, large=(3, 2, 2))
    host.run("Get-HvbInventory")
    share = host.local_path("D:\\Partages")
    names = ["Archives/boite-mail-1.pst", "Archives/projets-1.zip",
             "Logiciels/installation-1.iso"]
    sizes = [(share / n).stat().st_size for n in names]
    assert sizes == [3 * 2**20, 2 * 2**20, 2 * 2**20]
    first = [sha(share / n) for n in names]
    changed = [0, 0, 0]
    for _ in range(10):
        clock.advance(timedelta(days=1))
        host.run("Get-HvbInventory")
        now = [sha(share / n) for n in names]
        changed = [c + (a != b) for c, a, b in zip(changed, first, now, strict=True)]
        first = now
    pst, zip_, iso = changed
    assert pst >= 5 and (share / names[0]).stat().st_size > sizes[0]  # the mailbox grows
    assert zip_ <= 4 and iso == 0
    assert len(list(share.rglob("document-*.txt"))) > 0


def make_dba_host(root: Path, clock: FrozenClock, edition: str = "standard") -> SimulatedHost:
    """An instance as a DBA leaves it: a snapshot, a log-shipping secondary in standby, an
    offline archive, and the system databases."""
    spec = WorldSpec(sql={"SQL01\\COMPTA": ["COMPTA", "PAIE", "ARCHIVES", "ERP_LS"]},
                     sql_database_mb=[1], sql_edition=edition)
    host = SimulatedHost("acme/hv01", root, spec, now=clock.now,
                         today=lambda: clock.now().date(), sleep=lambda s: None, roots=ROOTS)
    host.world.sql_snapshot("SQL01\\COMPTA", "COMPTA", "COMPTA_avant_cloture")
    host.world.sql_set_state("SQL01\\COMPTA", "ARCHIVES", "OFFLINE")
    host.world.sql_set_state("SQL01\\COMPTA", "ERP_LS", standby=True)
    return host


def test_all_is_the_user_databases_that_can_be_backed_up_and_says_what_it_left_out(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_dba_host(tmp_path, clock)
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Database=["all"], ExcludeDatabase=["PAIE"])
    assert [(d["name"], d["verified"]) for d in result["databases"]] == [("COMPTA", True)]
    assert result["skipped"] == [
        {"name": "ARCHIVES", "reason": "not_online", "state": "OFFLINE"},
        {"name": "COMPTA_avant_cloture", "reason": "snapshot", "state": "ONLINE"},
        {"name": "ERP_LS", "reason": "standby", "state": "ONLINE"},
        {"name": "PAIE", "reason": "excluded", "state": "ONLINE"},
        {"name": "master", "reason": "system", "state": "ONLINE"},
        {"name": "model", "reason": "system", "state": "ONLINE"},
        {"name": "msdb", "reason": "system", "state": "ONLINE"}]
    planned = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                       RunId="r2", DryRun=True)
    assert len(planned["planned"]) == 2 and len(planned["skipped"]) == 6


def test_system_databases_named_explicitly_are_backed_up_the_impossible_ones_refused(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_dba_host(tmp_path, clock)
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Database=["master", "msdb", "model", "tempdb",
                                            "COMPTA_avant_cloture", "ERP_LS", "ARCHIVES"])
    outcome = {d["name"]: d["error"]["code"] if d["error"] else d["verified"]
               for d in result["databases"]}
    assert outcome == {"master": True, "msdb": True, "model": True,
                       "tempdb": "DB_NOT_BACKUPABLE", "COMPTA_avant_cloture": "DB_NOT_BACKUPABLE",
                       "ERP_LS": "DB_NOT_BACKUPABLE", "ARCHIVES": "DB_NOT_BACKUPABLE"}
    messages = {d["name"]: d["error"]["message"] for d in result["databases"] if d["error"]}
    assert "database snapshot" in messages["COMPTA_avant_cloture"]
    assert "standby" in messages["ERP_LS"] and "OFFLINE" in messages["ARCHIVES"]
    assert result["skipped"] == []


def test_backup_needs_db_backupoperator_in_the_database(tmp_path: Path,
                                                        clock: FrozenClock) -> None:
    # Onboarding made the login db_backupoperator where it could; a database restored from
    # elsewhere since has no such user, and BACKUP says so (Msg 262).
    host = make_dba_host(tmp_path, clock)
    world = host.world
    world.state["sql"]["SQL01\\COMPTA"]["databases"]["msdb"]["backup_operator"] = False
    world.save()
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1", Database=["msdb", "COMPTA"])
    errors = {d["name"]: d["error"] and d["error"]["message"] for d in result["databases"]}
    assert errors == {"msdb": "BACKUP DATABASE [msdb] failed: BACKUP DATABASE permission "
                              "denied in database 'msdb'.", "COMPTA": None}


@pytest.mark.parametrize("edition", ["web", "express"])
def test_web_and_express_have_no_database_snapshots(tmp_path: Path, clock: FrozenClock,
                                                    edition: str) -> None:
    with pytest.raises(ValueError, match="no database snapshots"):
        make_dba_host(tmp_path, clock, edition)


def test_the_run_folder_grants_the_sql_server_service_which_writes_the_dump(
        tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    host = make_host(tmp_path, clock)
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                      StagingPath="D:\\hvbackup-staging", RunId="r1")
    assert result["service_account"] == "NT SERVICE\\MSSQL$COMPTA"
    assert host.world.state["acl"]["d:\\hvbackup-staging\\r1"] == ["NT SERVICE\\MSSQL$COMPTA"]
    assert all(d["verified"] for d in result["databases"])
    # Without the grant the service cannot create the file, whoever asked for the backup.
    monkeypatch.setattr(SimulatedHost, "_grant_modify", lambda self, folder, principal: None)
    refused = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                       StagingPath="D:\\hvbackup-staging", RunId="r2")
    assert {d["error"]["code"] for d in refused["databases"]} == {"SQL_BACKUP_FAILED"}
    assert "Operating system error 5(Access is denied.)" in refused["databases"][0]["error"][
        "message"]
    assert not list(host.local_path("D:\\hvbackup-staging\\r2").iterdir())


def test_replace_overwrites_only_a_restored_copy_production_needs_its_own_switch(
        tmp_path: Path, clock: FrozenClock) -> None:
    host = make_host(tmp_path, clock)
    bak = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                   RunId="r1")["databases"][0]["file"]

    def restore(**params: object) -> dict[str, object]:
        return host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA", BackupFile=bak,
                        DatabaseName="COMPTA", **params)

    copy = restore(TargetName="COMPTA_copie")
    assert (copy["replaced"], copy["overwrote_production"]) == (False, False)
    again = restore(TargetName="COMPTA_copie", Replace=True)  # a copy hvbackup made
    assert (again["replaced"], again["overwrote_production"]) == (True, False)
    with pytest.raises(ScriptFailed, match="TARGET_NOT_HVBACKUP"):
        restore(TargetName="COMPTA", Replace=True)  # production: -Replace is not enough
    with pytest.raises(ScriptFailed, match="TARGET_NOT_HVBACKUP"):
        restore(TargetName="PAIE", Replace=True, DryRun=True)
    over = restore(TargetName="COMPTA", Replace=True, OverwriteProduction=True)
    assert (over["replaced"], over["overwrote_production"]) == (True, True)
    with pytest.raises(ScriptFailed, match="TARGET_NOT_HVBACKUP"):  # it is production again
        restore(TargetName="COMPTA", Replace=True)


def test_read_only_databases_without_a_backup_user_are_left_out_or_refused_clearly(
        tmp_path: Path, clock: FrozenClock) -> None:
    # A read-only database at onboarding could be given no db_backupoperator user (it takes
    # no new user); BACKUP is allowed in a read-only database, so one made read-only after
    # onboarding keeps its user and is backed up.
    host = make_dba_host(tmp_path, clock)
    host.world.sql_set_state("SQL01\\COMPTA", "ARCHIVES", "ONLINE")
    host.world.sql_set_read_only("SQL01\\COMPTA", "ARCHIVES", onboarded_since=True)
    host.world.sql_set_read_only("SQL01\\COMPTA", "PAIE")
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                      RunId="r1")
    assert [(d["name"], d["verified"], d["error"]) for d in result["databases"]] == [
        ("COMPTA", True, None), ("PAIE", True, None)]
    assert {"name": "ARCHIVES", "reason": "read_only", "state": "ONLINE"} in result["skipped"]
    named = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA", StagingPath="D:\\s",
                     RunId="r2", Database=["ARCHIVES", "PAIE"])
    outcome = {d["name"]: d["error"] and d["error"]["code"] for d in named["databases"]}
    assert outcome == {"ARCHIVES": "DB_READ_ONLY", "PAIE": None}
    assert "READ_WRITE" in named["databases"][0]["error"]["message"]


def test_free_space_is_that_of_the_mount_point_volume_the_staging_folder_is_on(
        tmp_path: Path, clock: FrozenClock) -> None:
    # A staging folder on a volume mounted at D:\Mounts\Staging\ has no drive letter: its free
    # space is that volume's (Win32_Volume.Name the deepest prefix), not D:'s, nor unknown.
    host = make_host(tmp_path, clock, sizes=(4, 1))
    host.roots = simroots.onboard(["D:\\Mounts\\Staging\\hvb"], ["D:\\Partages"], ["D:\\Restore"])
    host.world.state["mount_points"] = ["D:\\Mounts\\Staging\\"]
    host.world.state["mount_point_free"] = {"D:\\Mounts\\Staging\\": 2 * 1024 * 1024}
    host.world.save()
    result = host.run("Invoke-HvbSqlBackup", Instance="SQL01\\COMPTA",
                      StagingPath="D:\\Mounts\\Staging\\hvb", RunId="r1")
    outcome = {d["name"]: d["error"] and d["error"]["code"] for d in result["databases"]}
    assert outcome == {"COMPTA": "STAGING_FULL", "PAIE": None}
    assert "D:\\Mounts\\Staging\\ " in result["databases"][0]["error"]["message"]


def test_the_script_finds_the_staging_volume_by_its_deepest_root() -> None:
    # Filtering Win32_Volume by DriveLetter found nothing on a mount point, and the check was
    # skipped in silence.
    text = (REPO / "powershell" / "Invoke-HvbSqlBackup.ps1").read_text(encoding="utf-8")
    check = text[text.index("$size = [int64]$rows[$name].size_bytes"):]
    check = check[:check.index("$file = ")]
    assert "DriveLetter" not in text and "Get-StagingVolume $target" in check
    assert "if ($free -lt $size)" in check
    finder = text[text.index("function Get-StagingVolume"):]
    finder = finder[:finder.index("\n}\n")]
    assert "$full.StartsWith($_.Name, [System.StringComparison]::OrdinalIgnoreCase)" in finder
    assert "Sort-Object { $_.Name.Length } -Descending" in finder
