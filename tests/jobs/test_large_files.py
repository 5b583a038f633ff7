"""Large files through the real job path: captured on the simulated host, read, stored,
copied to the second baie and restored from it with the client's key, byte for byte; and SQL
dumps that cost the WAN only what changed."""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.history.models import RunEventRow
from orchestrator.store.restore import local_relative
from tests.world import Setup

MB = 1024 * 1024


def sha(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files_restored_byte_for_byte(tmp_path: Path, sizes_mb: list[int]) -> None:
    s = Setup(tmp_path, simulated=f"seed: 4, vm_disk_mb: 4, share_files: 10, "
                                  f"share_large_files_mb: {sizes_mb}")
    result = s.run("partages")
    assert result.status == "REUSSIE", result
    live = s.host().local_path("D:\\Partages")
    large = sorted(p for p in live.rglob("*") if p.stat().st_size > 16 * MB)
    assert sorted(p.stat().st_size for p in large) == sorted(mb * MB for mb in sizes_mb)
    out = tmp_path / "out"
    s.restore("partages", out, baie="site-b")
    for path in large:
        restored = out / local_relative("D:\\Partages\\" + str(path.relative_to(live)))
        assert sha(restored) == sha(path), path.name


def _dumps_restored_byte_for_byte(tmp_path: Path, sizes_mb: list[int]) -> None:
    """The .bak restored from the second baie, given back to SQL Server, is the database."""
    s = Setup(tmp_path, simulated=f"seed: 4, vm_disk_mb: 4, share_files: 10, "
                                  f"sql_database_mb: {sizes_mb}")
    result = s.run("compta")
    assert result.status == "REUSSIE", result
    out = tmp_path / "out"
    s.restore("compta", out, baie="site-b")
    host = s.host()
    for name, size_mb in zip(("COMPTA", "PAIE"), sizes_mb, strict=True):
        bak = next(out.rglob(f"{name}.bak"))
        assert bak.stat().st_size > size_mb * MB
        back = f"D:\\Restore\\{name}.bak"
        host.local_path(back).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(bak, host.local_path(back))
        restored = host.run("Restore-HvbSqlDatabase", Instance="SQL01\\COMPTA",
                            BackupFile=back, DatabaseName=name, TargetName=f"{name}_copie")
        live = host.local_path(f"D:\\SQL\\SQL01_COMPTA\\{name}.mdf")
        assert sha(host.local_path(restored["moves"][0]["to"])) == sha(live), name


def test_files_job_restores_large_share_files_byte_for_byte(tmp_path: Path) -> None:
    _files_restored_byte_for_byte(tmp_path, [101, 17])


def test_sql_job_restores_large_dumps_byte_for_byte(tmp_path: Path) -> None:
    _dumps_restored_byte_for_byte(tmp_path, [101, 17])


@pytest.mark.slow
def test_a_gibibyte_dump_and_share_file_restored_byte_for_byte(tmp_path: Path) -> None:
    _dumps_restored_byte_for_byte(tmp_path / "sql", [1024, 1])
    _files_restored_byte_for_byte(tmp_path / "files", [1024])


def test_default_dumps_send_less_every_night_than_compressed_ones(tmp_path: Path) -> None:
    """Uncompressed dumps deduplicate against the last night's; compressed ones are a new
    stream every night, sent whole."""
    sent: dict[bool, list[int]] = {}
    for compression in (False, True):
        s = Setup(tmp_path / str(compression),
                  simulated="seed: 4, vm_disk_mb: 4, share_files: 10, sql_database_mb: [24, 1]",
                  sql="\n        backup_compression: true" if compression else "")
        sent[compression] = []
        for _night in range(3):
            result = s.run("compta")
            assert result.status == "REUSSIE", result
            sent[compression].append(result.figures.bytes_sent)
            s.clock.advance(timedelta(days=1))
    default, compressed = sent[False], sent[True]
    assert all(d < c / 3 for d, c in zip(default[1:], compressed[1:], strict=True)), sent
    assert sum(default) < sum(compressed) / 2, sent


def test_compression_asked_of_express_is_made_uncompressed_and_said(tmp_path: Path) -> None:
    s = Setup(tmp_path, simulated="seed: 4, vm_disk_mb: 4, share_files: 10, "
                                  "sql_edition: express",
              sql="\n        backup_compression: true")
    result = s.run("compta")
    assert result.status == "REUSSIE", result
    with s.sessions() as session:
        warnings = [e.message for e in session.scalars(select(RunEventRow))
                    if e.level == "WARNING"]
    assert warnings == ["SQL01\\COMPTA (Express Edition (64-bit)) cannot compress backups: "
                        "the dumps were made uncompressed (backup_compression)"]
    out = tmp_path / "out"
    s.restore("compta", out)
    assert sorted(p.name for p in out.rglob("*.bak")) == ["COMPTA.bak", "PAIE.bak"]
