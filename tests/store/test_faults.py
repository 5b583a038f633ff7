"""What goes wrong in real life: a backup killed mid-upload, a damaged pack, a full or
unreachable baie, a wrong passphrase, two processes on one repository."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.sftp import SftpTarget
from orchestrator.baie.wrappers import RetryTarget
from orchestrator.errors import BaieFull, BaieUnreachable, KeyMismatch
from orchestrator.store.keys import generate_private_key, read_key_file, write_key_file
from orchestrator.store.locks import Lock, RepositoryLocked
from orchestrator.store.restore import Restorer
from orchestrator.store.verify import verify
from tests.conftest import REPO
from tests.store.helpers import Store, make_tree, restored, sha_of

KILLABLE = """
import base64, sys
from pathlib import Path
from orchestrator.baie.local import LocalTarget
from orchestrator.baie.wrappers import LimitTarget
from orchestrator.mover.source import LocalSource
from orchestrator.store import backup, packer
from orchestrator.store.keys import PublicKey
from orchestrator.store.repository import Repository

root, src = Path(sys.argv[1]), sys.argv[2]
packer.INDEX_EVERY_PACKS = 1
public = PublicKey(base64.b64decode((root / "public").read_text()))
target = LimitTarget(LocalTarget("site-a", root / "baie"), sustained_mbps=160)  # 20 MB/s
repo = Repository.open_for_writing(target, base64.b64decode((root / "writer").read_text()),
                                   [public], root / "cache-killed")
backup.backup_paths(repo, LocalSource("local"), [src], {"client": "acme", "job": "erp"},
                    pack_size=8 * 1024 * 1024, compression_level=1)
print("finished")
"""


@pytest.mark.slow
def test_backup_killed_mid_upload_resumes_without_resending(tmp_path: Path) -> None:
    src = tmp_path / "ERP01.vhdx"
    src.write_bytes(os.urandom(64 * 1024 * 1024))  # incompressible: 8 packs of 8 MiB
    store = Store(tmp_path)
    (tmp_path / "public").write_text(base64.b64encode(store.key.public.raw).decode())
    (tmp_path / "writer").write_text(base64.b64encode(store.writer).decode())
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tmp_path), str(src)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    index_dir = tmp_path / "baie" / "index"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(index_dir.glob("*"))) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sent_before = sum(p.stat().st_size for p in (tmp_path / "baie" / "data").rglob("*")
                      if p.is_file())
    assert 0 < sent_before < 64 * 1024 * 1024
    assert not (tmp_path / "baie" / "snapshots").exists()  # no snapshot from a killed run
    # A lease left by the killed process would block prune, not a backup (shared).
    _info, stats = store.backup([src], pack_size=8 * 1024 * 1024)
    assert stats.chunks_new < stats.chunks  # what was uploaded is reused...
    assert stats.bytes_stored <= 64 * 1024 * 1024 - sent_before + 2 * 1024 * 1024  # ...not resent
    repo = store.reader_repo()
    report = verify(repo, subset=1.0, key=store.key)
    assert report.ok, [str(p) for p in report.problems]
    out = tmp_path / "out"
    Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out)
    assert sha_of(restored(out, src)) == sha_of(src)
    repo.close()


def _flip_a_byte_in_the_pack_of(store: Store, tmp_path: Path) -> Path:
    packs = sorted(p for p in (tmp_path / "baie" / "data").rglob("*") if p.is_file())
    pack = packs[0]
    raw = bytearray(pack.read_bytes())
    raw[200] ^= 0x40
    pack.write_bytes(bytes(raw))
    return pack


def test_verify_names_the_snapshot_and_file_a_flipped_byte_damages(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "compta.bak").write_bytes(os.urandom(600_000))
    store = Store(tmp_path)
    info, _ = store.backup([src])
    repo = store.reader_repo()
    assert verify(repo, subset=1.0, key=store.key).ok
    pack = _flip_a_byte_in_the_pack_of(store, tmp_path)
    without_key = verify(store.writer_repo(), subset=1.0)
    assert [p.pack for p in without_key.problems] == [pack.name]
    assert "does not match its name" in without_key.problems[0].what
    assert info.id[:12] in without_key.problems[0].damaged[0]
    with_key = verify(repo, subset=1.0, key=store.key)
    problem = with_key.problems[0]
    assert "1 chunk(s) do not decrypt" in problem.what
    assert problem.damaged == [
        f"snapshot {info.id[:12]} (erp, {info.meta['time'][:16]}): {src / 'compta.bak'}"]
    repo.close()


def test_verify_reports_a_missing_pack(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(os.urandom(100_000))
    store = Store(tmp_path)
    info, _ = store.backup([src])
    pack = next(p for p in (tmp_path / "baie" / "data").rglob("*") if p.is_file())
    pack.unlink()
    report = verify(store.writer_repo())
    assert "is missing from the baie" in report.problems[0].what
    assert info.id[:12] in report.problems[0].damaged[0]


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs to fill (needs root): {done.stderr}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_baie_is_a_clear_error_and_corrupts_nothing(tmp_path: Path, tiny_disk: Path
                                                         ) -> None:
    store = Store(tmp_path, LocalTarget("site-a", tiny_disk / "acme"))
    small = tmp_path / "small.txt"
    small.write_bytes(os.urandom(200_000))
    first, _ = store.backup([small])
    big = tmp_path / "big.bak"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    with pytest.raises(BaieFull, match=r"baie site-a .* is full .*nothing stored was damaged"):
        store.backup([big], pack_size=2 * 1024 * 1024)
    assert not list(tiny_disk.rglob("*.hvbtmp-*")), "temporary files cleaned up"
    repo = store.reader_repo()
    assert [s.id for s in repo.snapshots()] == [first.id]
    assert verify(repo, subset=1.0, key=store.key).ok
    out = tmp_path / "out"
    Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out)
    assert sha_of(restored(out, small)) == sha_of(small)
    repo.close()


def test_unreachable_baie_retries_then_fails_with_the_reason(tmp_path: Path) -> None:
    from tests.servers import free_port

    key = tmp_path / "k"
    key.write_text("")
    sleeps: list[float] = []
    target = RetryTarget(SftpTarget("paris-1", "127.0.0.1", user="x", key_file=key,
                                    known_hosts=key, root="/srv", port=free_port(), timeout_s=2),
                         attempts=3, sleep=sleeps.append)
    store = Store(tmp_path, target)
    src = tmp_path / "a.txt"
    src.write_bytes(b"x")
    with pytest.raises(BaieUnreachable, match=r"cannot connect.*\(after 3 attempts\)"):
        store.backup([src])
    assert sleeps == [2.0, 4.0]


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    key = generate_private_key()
    write_key_file(tmp_path / "acme.key", key, "correct horse battery", "ACME")
    assert read_key_file(tmp_path / "acme.key", "correct horse battery").raw() == key.raw()
    with pytest.raises(KeyMismatch, match="wrong passphrase for key file"):
        read_key_file(tmp_path / "acme.key", "Correct horse battery")


def test_exclusive_lock_waits_for_backups_and_expired_leases_do_not_block(
        tmp_path: Path) -> None:
    target = LocalTarget("site-a", tmp_path)
    with Lock(target, "shared", "backup acme/erp").acquire():
        with Lock(target, "shared", "backup acme/compta").acquire():
            pass  # backups share
        with pytest.raises(RepositoryLocked, match="locked by backup acme/erp"):
            Lock(target, "exclusive", "prune").acquire()
    # A lock whose holder died stops counting when its lease ends.
    past = datetime.now(UTC) - timedelta(hours=1)
    dead = Lock(target, "exclusive", "prune (crashed)", now=lambda: past)
    dead._write()
    with Lock(target, "exclusive", "prune").acquire():
        pass  # the expired exclusive lock did not block this one...
    assert dead.name not in [e.name for e in target.list("locks")]  # ...and was cleared


def test_many_small_files(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    make_tree(src, 2000)
    store = Store(tmp_path)
    _, stats = store.backup([src])
    assert stats.files == 2000
    repo = store.reader_repo()
    stats_r = Restorer(repo, store.key).restore(repo.find_snapshot("latest"), tmp_path / "o")
    assert stats_r.files == 2000
    repo.close()


def test_prune_rewrites_mostly_wasted_packs_without_any_key(tmp_path: Path) -> None:
    from orchestrator.store.prune import forget, prune

    store = Store(tmp_path)
    keep_me = tmp_path / "keep.bin"
    drop_me = tmp_path / "drop.bin"
    keep_me.write_bytes(os.urandom(300_000))
    drop_me.write_bytes(os.urandom(3_000_000))
    first, _ = store.backup([keep_me, drop_me])  # one pack holding both files
    drop_me.unlink()
    second, _ = store.backup([keep_me])  # references only keep.bin's chunk
    repo = store.writer_repo()  # the orchestrator: writer key, no client key
    forget(repo, [s for s in repo.snapshots() if s.id == first.id])
    before = sum(p.stat().st_size for p in (tmp_path / "baie" / "data").rglob("*") if p.is_file())
    report = prune(repo)
    after = sum(p.stat().st_size for p in (tmp_path / "baie" / "data").rglob("*") if p.is_file())
    assert report.packs_repacked == 1
    assert after < before / 5  # the 3 MB of drop.bin are gone...
    assert verify(repo).ok  # ...and the orchestrator's own index cache follows the move
    repo.close()
    reader = store.reader_repo("after-prune")
    assert verify(reader, subset=1.0, key=store.key).ok
    out = tmp_path / "out"
    Restorer(reader, store.key).restore(reader.find_snapshot(second.id), out)
    assert sha_of(restored(out, keep_me)) == sha_of(keep_me)  # ...keep.bin restores intact
    reader.close()
