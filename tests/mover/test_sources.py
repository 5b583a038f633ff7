"""Sources read what a capture exposes: locally, and over SMB from a real Samba server."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from orchestrator.errors import SourceError
from orchestrator.mover.smb import SmbSource
from orchestrator.mover.source import LocalSource, read_blocks
from tests.servers import SambaServer, samba


def _tree(folder: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"hello",
        "sub/b.bin": os.urandom(300_000),
        "sub/deeper/c.txt": b"c" * 10,
        "z-empty.dat": b"",
    }
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_local_source_walks_reads_and_stats(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    source = LocalSource("local")
    walked = list(source.walk(str(tmp_path)))
    assert [f.path for f in walked] == [str(tmp_path / r) for r in sorted(files)]
    assert [f.size for f in walked] == [len(files[r]) for r in sorted(files)]
    assert b"".join(read_blocks(source, str(tmp_path / "sub/b.bin"), 65536)) == files["sub/b.bin"]
    assert source.stat(str(tmp_path / "sub")).is_dir


def test_local_source_with_a_host_path_mapping(tmp_path: Path) -> None:
    (tmp_path / "D" / "Partages").mkdir(parents=True)
    (tmp_path / "D" / "Partages" / "x.txt").write_bytes(b"x")
    source = LocalSource("sim", mapper=lambda p: tmp_path / p[0] / p[3:].replace("\\", "/"))
    assert [f.path for f in source.walk("D:\\Partages")] == ["D:\\Partages\\x.txt"]


def test_local_source_errors_name_the_file(tmp_path: Path) -> None:
    source = LocalSource("acme/nas")
    with pytest.raises(SourceError, match=r"acme/nas: .*nope.bin does not exist"):
        source.open(str(tmp_path / "nope.bin"))
    with pytest.raises(SourceError, match="is not a folder"):
        list(source.walk(str(tmp_path / "nope")))


@pytest.fixture(scope="module")
def smb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    with samba(tmp_path_factory.mktemp("samba")) as server:
        yield server


def _smb(server: SambaServer, password: str | None = None) -> SmbSource:
    return SmbSource("acme/hv01", "127.0.0.1", username=server.user,
                     password=password or server.password, port=server.port)


class _LiveFolder(LocalSource):
    """A folder in use while it is backed up: reading a file removes a file and a folder that
    were listed with it, not read yet (a NAS share, no shadow copy)."""

    def __init__(self, root: Path) -> None:
        super().__init__("nas")
        self.root = root

    def open(self, path: str) -> BinaryIO:
        stream = super().open(path)
        if path.endswith("a-first.txt"):
            os.remove(self.root / "sub" / "b.bin")
            shutil.rmtree(self.root / "sub" / "deeper")
        return stream


def test_files_removed_while_a_live_folder_is_read_are_left_out(tmp_path: Path) -> None:
    from orchestrator.store.restore import Restorer
    from tests.store.helpers import Store, restored

    folder = tmp_path / "Partages"
    _tree(folder)
    (folder / "sub" / "a-first.txt").write_bytes(b"first")
    (folder / "sub" / "keep.txt").write_bytes(b"kept")
    source = _LiveFolder(folder)
    store = Store(tmp_path)
    repo = store.writer_repo()
    from orchestrator.store.backup import backup_paths

    _info, stats = backup_paths(repo, source, [str(folder)], {"client": "acme", "job": "files"})
    repo.close()
    assert stats.files == 4  # a.txt, sub/a-first.txt, sub/keep.txt, z-empty.dat
    reader = store.reader_repo()
    out = tmp_path / "out"
    Restorer(reader, store.key).restore(reader.find_snapshot("latest"), out)
    reader.close()
    assert restored(out, folder / "a.txt").read_bytes() == b"hello"
    assert restored(out, folder / "sub" / "keep.txt").read_bytes() == b"kept"
    assert not restored(out, folder / "sub" / "b.bin").exists()


def test_smb_source_walks_and_reads_a_real_share(smb_server: SambaServer) -> None:
    files = _tree(smb_server.folder / "walk")
    source = _smb(smb_server)
    try:
        root = f"\\\\127.0.0.1\\{smb_server.share}\\walk"
        walked = list(source.walk(root))
        assert [f.path for f in walked] == [root + "\\" + r.replace("/", "\\")
                                            for r in sorted(files)]
        assert [f.size for f in walked] == [len(files[r]) for r in sorted(files)]
        data = b"".join(read_blocks(source, root + "\\sub\\b.bin", 65536))
        assert data == files["sub/b.bin"]
        assert source.stat(root + "\\sub").is_dir
    finally:
        source.close()


def test_smb_source_streams_a_large_file(smb_server: SambaServer) -> None:
    big = smb_server.folder / "disk.vhdx"
    expected = hashlib.sha256()
    with big.open("wb") as f:
        for _ in range(24):  # 96 MiB, mixed content
            block = os.urandom(2 * 1024 * 1024) + bytes(2 * 1024 * 1024)
            f.write(block)
            expected.update(block)
    source = _smb(smb_server)
    try:
        got = hashlib.sha256()
        largest = 0
        for block in read_blocks(source, f"\\\\127.0.0.1\\{smb_server.share}\\disk.vhdx"):
            largest = max(largest, len(block))
            got.update(block)
        assert got.hexdigest() == expected.hexdigest()
        assert largest <= 4 * 1024 * 1024  # read in blocks, never whole
    finally:
        source.close()
        big.unlink()


def test_smb_wrong_password_is_a_clear_error(smb_server: SambaServer) -> None:
    source = _smb(smb_server, password="wrong-password")
    with pytest.raises(SourceError, match="the account hvbsmbtest was refused") as info:
        source.open(f"\\\\127.0.0.1\\{smb_server.share}\\a.txt")
    assert "wrong-password" not in str(info.value)


def test_smb_missing_file_and_share(smb_server: SambaServer) -> None:
    source = _smb(smb_server)
    try:
        with pytest.raises(SourceError, match="not found"):
            source.open(f"\\\\127.0.0.1\\{smb_server.share}\\nope.bin")
        with pytest.raises(SourceError, match="not found"):
            source.open("\\\\127.0.0.1\\noshare\\x")
    finally:
        source.close()


def test_smb_unreachable_server() -> None:
    from tests.servers import free_port

    source = SmbSource("acme/hv01", "127.0.0.1", username="u", password="p", port=free_port(),
                       connection_timeout_s=3)
    with pytest.raises(SourceError, match="cannot reach the file server") as info:
        source.open("\\\\127.0.0.1\\data\\x")
    assert info.value.permanent is False


def test_drive_paths_map_to_the_administrative_share_for_an_administrator_only() -> None:
    source = SmbSource("acme/hv01", "hv01.acme.local", username="u", password="p",
                       admin_shares=True)
    assert source.unc("D:\\Hyper-V\\ERP01.vhdx") == "\\\\hv01.acme.local\\D$\\Hyper-V\\ERP01.vhdx"
    assert source.unc("\\\\nas\\share\\x") == "\\\\nas\\share\\x"
    with pytest.raises(SourceError, match="neither a UNC path nor a drive path"):
        source.unc("relative\\path")


def test_the_onboarding_account_reads_a_per_run_share_not_an_admin_share(
        smb_server: SambaServer) -> None:
    """The rules of a Windows host for the account onboarding creates: a per-run share granted
    to it is read (named by the host's own name, reached at the address configured); a drive
    path is refused before any request; the administrative share is denied by the server."""
    assert smb_server.run_folder is not None
    files = _tree(smb_server.run_folder / "Partages")
    source = _smb(smb_server)
    try:
        root = "\\\\HV01\\hvb-run1-1$\\Partages"
        walked = list(source.walk(root))
        assert [f.path for f in walked] == [root + "\\" + r.replace("/", "\\")
                                            for r in sorted(files)]
        assert b"".join(read_blocks(source, root + "\\a.txt")) == b"hello"
        with pytest.raises(SourceError, match="drive path: reading it needs the administrative "
                           "share D\\$") as info:
            source.open("D:\\Partages\\a.txt")
        assert info.value.permanent
    finally:
        source.close()
    admin = SmbSource("acme/hv01", "127.0.0.1", username=smb_server.user,
                      password=smb_server.password, port=smb_server.port, admin_shares=True)
    try:
        with pytest.raises(SourceError, match=r"access denied .*administrative shares"):
            admin.open("D:\\g.txt")
    finally:
        admin.close()


def test_the_onboarding_account_reads_sql_dumps_and_vm_exports_through_their_run_shares(
        smb_server: SambaServer) -> None:
    """What Invoke-HvbSqlBackup and New-HvbCheckpoint -Mode export return to a JEA caller
    (databases[].exposed, files[].exposed): read by the account that is no administrator; the
    drive paths of the same files (databases[].file, files[].path) are refused to it."""
    assert smb_server.staging_shares is not None
    sql, vm = smb_server.staging_shares["hvb-run1-sql$"], smb_server.staging_shares["hvb-run1-vm$"]
    (sql / "COMPTA.bak").write_bytes(b"TAPE" * 1000)
    (vm / "ERP01" / "Virtual Hard Disks").mkdir(parents=True)
    (vm / "ERP01" / "Virtual Hard Disks" / "ERP01.vhdx").write_bytes(b"vhdxfile" * 4096)
    source = _smb(smb_server)
    try:
        bak = "\\\\HV01\\hvb-run1-sql$\\COMPTA.bak"
        assert b"".join(read_blocks(source, bak)) == b"TAPE" * 1000
        export = "\\\\HV01\\hvb-run1-vm$"
        assert [f.path for f in source.walk(export)] == [
            export + "\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"]
        assert source.stat(export + "\\ERP01\\Virtual Hard Disks\\ERP01.vhdx").size == 8 * 4096
        for drive_path in ("D:\\hvbackup-staging\\run1\\COMPTA.bak",
                           "D:\\hvbackup-staging\\run1\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"):
            with pytest.raises(SourceError, match="administrative share D\\$"):
                source.open(drive_path)
    finally:
        source.close()


def test_a_link_to_a_local_device_is_not_followed(smb_server: SambaServer) -> None:
    """What mklink /d to a shadow copy made: the server leaves the link to the client, which
    cannot reach \\\\?\\GLOBALROOT\\Device\\... (Samba here: follow symlinks = no)."""
    (smb_server.folder / "shadow").mkdir()
    os.symlink("/GLOBALROOT/Device/HarddiskVolumeShadowCopy1/",
               smb_server.folder / "shadow" / "r1-D")
    source = _smb(smb_server)
    try:
        with pytest.raises(SourceError, match="not found"):
            list(source.walk(f"\\\\127.0.0.1\\{smb_server.share}\\shadow\\r1-D\\Partages"))
        # The shadow folder lists no entry to follow: links are never walked into.
        assert list(source.walk(f"\\\\127.0.0.1\\{smb_server.share}\\shadow")) == []
    finally:
        source.close()


def test_a_link_smbprotocol_refuses_is_a_permanent_error_that_says_why() -> None:
    """A Windows server answers STATUS_STOPPED_ON_SYMLINK; smbprotocol's resolve_path refuses a
    target on a local path (exceptions.py): the error says so and is not retried."""
    from smbprotocol.exceptions import SMBLinkRedirectionError

    source = SmbSource("acme/hv01", "hv01", username="u", password="p")
    exc = SMBLinkRedirectionError("Cannot resolve link targets that point to a local path",
                                  "\\\\hv01\\C$\\ProgramData\\hvbackup\\shadow\\r1-D",
                                  "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy1\\")
    error = source._translate(exc, "listing the shadow copy")
    assert error.permanent
    assert "GLOBALROOT" in error.message and "cannot follow" in error.message


def test_links_are_left_out_but_deduplicated_files_are_read() -> None:
    """Reparse tags (MS-FSCC 2.1.2.1): links carry the name-surrogate bit, files whose data a
    filter holds (Data Deduplication, cloud, WOF) do not; those are files to back up."""
    from orchestrator.mover.smb import is_link

    reparse = 0x400
    assert is_link(reparse, 0xA000000C)  # IO_REPARSE_TAG_SYMLINK
    assert is_link(reparse | 0x10, 0xA0000003)  # IO_REPARSE_TAG_MOUNT_POINT (junction)
    assert not is_link(reparse, 0x80000013)  # IO_REPARSE_TAG_DEDUP: a deduplicated file
    assert not is_link(reparse, 0x80000017)  # IO_REPARSE_TAG_WOF: a compressed system file
    assert not is_link(reparse, 0x9000001A)  # IO_REPARSE_TAG_CLOUD: a OneDrive file
    assert not is_link(0x20, 0)  # an ordinary file


def test_a_file_the_account_may_not_read_is_named_and_the_rest_is_backed_up(
        smb_server: SambaServer, tmp_path: Path) -> None:
    """The share grants Read, but a file's own permissions refuse the account: the real server
    answers ACCESS_DENIED for it (and for a folder it may not list). Listed, refused, named in
    ``denied``; the other files are backed up with their bytes."""
    from orchestrator.errors import SourceDenied
    from orchestrator.store.backup import backing_up
    from orchestrator.store.restore import Restorer
    from tests.store.helpers import Store

    assert smb_server.ntfs_folder is not None
    top = smb_server.ntfs_folder / "Partages"
    (top / "Public").mkdir(parents=True)
    (top / "Public" / "note.txt").write_bytes(b"for everyone")
    (top / "a.txt").write_bytes(b"hello")
    (top / "salaires.xlsx").write_bytes(b"secret")
    (top / "Direction").mkdir()
    (top / "Direction" / "plan.docx").write_bytes(b"private")
    for folder in (top, top / "Public"):
        folder.chmod(0o755)
    for readable in (top / "a.txt", top / "Public" / "note.txt"):
        readable.chmod(0o644)
    (top / "salaires.xlsx").chmod(0o600)  # inheritance disabled, owner only
    (top / "Direction").chmod(0o700)
    root = "\\\\HV01\\hvb-run2-1$\\Partages"
    source = _smb(smb_server)
    try:
        walked = {f.path: f.denied for f in source.walk(root)}
        assert walked == {root + "\\Direction": True, root + "\\Public\\note.txt": False,
                          root + "\\a.txt": False, root + "\\salaires.xlsx": False}
        with pytest.raises(SourceDenied, match="NTFS permissions") as info:
            source.open(root + "\\salaires.xlsx")
        assert info.value.path == root + "\\salaires.xlsx" and info.value.permanent
        store = Store(tmp_path)
        repo = store.writer_repo()
        with backing_up(repo, "backup f") as backup:
            backup.add_path(source, root)
            backup.commit({"client": "acme", "job": "f"})
        repo.close()
    finally:
        source.close()
    assert backup.stats.files == 2
    assert backup.denied == [root + "\\Direction", root + "\\salaires.xlsx"]
    reader = store.reader_repo()
    out = tmp_path / "out"
    Restorer(reader, store.key).restore(reader.find_snapshot("latest"), out)
    reader.close()
    contents = sorted(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert contents == [b"for everyone", b"hello"]
