"""Back up, restore byte for byte, deduplicate, keep secrets sealed."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from orchestrator.errors import KeyMismatch, RepositoryCorrupt, StoreError
from orchestrator.store.keys import generate_private_key
from orchestrator.store.restore import Restorer
from tests.store.helpers import Store, change_blocks, make_image, make_tree, restored, sha_of


def test_round_trip_of_an_image_and_a_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_image(src / "ERP01.vhdx", 24)
    make_tree(src / "Partages", 120)
    (src / "empty.txt").write_bytes(b"")
    store = Store(tmp_path)
    info, stats = store.backup([src])
    assert stats.files == 122
    assert info.meta["files"] == 122 and info.meta["job"] == "erp"
    repo = store.reader_repo()
    out = tmp_path / "out"
    result = Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out)
    assert result.files == 122
    for path in src.rglob("*"):
        if path.is_file():
            assert sha_of(restored(out, path)) == sha_of(path), path
            assert restored(out, path).stat().st_mtime == pytest.approx(path.stat().st_mtime)
    repo.close()


def test_image_chunks_are_fixed_and_compressed_where_it_helps(tmp_path: Path) -> None:
    src = tmp_path / "disk.vhdx"
    make_image(src, 16)
    store = Store(tmp_path)
    _info, stats = store.backup([src])
    assert stats.chunks == 32  # 16 MiB in 512 KiB chunks
    assert stats.bytes_stored < stats.bytes_read * 0.75  # empty and text blocks shrink


def test_second_backup_stores_only_what_changed(tmp_path: Path) -> None:
    src = tmp_path / "disk.vhdx"
    make_image(src, 64)
    store = Store(tmp_path)
    _, first = store.backup([src])
    change_blocks(src, 0.02)
    _, second = store.backup([src])
    assert second.bytes_read == first.bytes_read
    writes = int(64 * 16 * 0.02)  # 20 scattered 4 KiB writes
    assert second.chunks_new <= writes  # each costs at most its one 64 KiB block
    assert second.bytes_new == second.chunks_new * 64 * 1024
    assert second.bytes_stored < first.bytes_stored * writes * 64 * 1024 / (64 << 20) + 100_000
    _, third = store.backup([src])
    assert third.chunks_new == 0


def test_inserted_bytes_do_not_shift_every_cdc_chunk(tmp_path: Path) -> None:
    src = tmp_path / "COMPTA.bak"
    src.write_bytes(os.urandom(12 * 1024 * 1024))
    store = Store(tmp_path)
    _, first = store.backup([src])
    data = src.read_bytes()
    src.write_bytes(data[:5_000_000] + b"inserted!" + data[5_000_000:])
    _, second = store.backup([src])
    assert first.chunks >= 8
    assert second.chunks_new <= 2


@pytest.mark.parametrize("megabytes", [17, 100])
def test_a_large_dump_round_trips_and_its_next_night_sends_only_changed_pages(
        tmp_path: Path, megabytes: int) -> None:
    """Every file over 16 MB failed its job (issue 18). A dump of 17 or 100 MB is restored
    byte for byte; the next night's dump (a header rewritten, 30 scattered 8 KiB pages, a page
    inserted near the start, pages appended) sends a small part of it."""
    src = tmp_path / "dumps" / "COMPTA.bak"
    src.parent.mkdir()
    rng = random.Random(megabytes)
    words = [b"facture", b"client", b"ligne", b"TVA", b"remise", b"Lyon", b"2026-11-30", b"EUR"]
    text = b" ".join(rng.choices(words, k=200_000))  # about 1.3 MB, not periodic
    pages = []
    for _ in range(megabytes * 1_000_000 // 8192):
        at = rng.randrange(len(text) - 6144)
        pages.append(rng.randbytes(2048) + text[at:at + 6144])
    src.write_bytes(b"".join(pages))
    store = Store(tmp_path)
    _, first = store.backup([src.parent])
    assert first.bytes_read == src.stat().st_size
    data = bytearray(src.read_bytes())
    data[:8192] = rng.randbytes(8192)
    for page in rng.sample(range(1, len(data) // 8192), 30):
        data[page * 8192:(page + 1) * 8192] = rng.randbytes(8192)
    data[40 * 8192:40 * 8192] = rng.randbytes(8192)
    data += rng.randbytes(300_000)
    src.write_bytes(data)
    _, second = store.backup([src.parent])
    if megabytes >= 100:  # 33 changed places, each in a chunk of about 256 KiB (1 MiB at most)
        assert second.bytes_new < 0.2 * len(data)
    repo = store.reader_repo()
    out = tmp_path / "out"
    Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out)
    assert restored(out, src).read_bytes() == bytes(data)
    repo.close()


def test_a_repository_keeps_the_chunk_sizes_it_was_created_with(tmp_path: Path) -> None:
    """A repository created before the smaller chunks (its config has no sizes) keeps being
    cut as it was: an unchanged 20 MB file sends nothing, rather than everything again."""
    src = tmp_path / "ARCHIVES.zip"
    src.write_bytes(os.urandom(20 * 1024 * 1024))
    store = Store(tmp_path)
    store.writer_repo().close()
    config = json.loads(store.target.get("config"))
    assert config["cdc"] == [64 * 1024, 256 * 1024, 1024 * 1024]
    del config["cdc"]  # as written before
    store.target.put("config", json.dumps(config).encode())
    _, first = store.backup([src])
    assert first.chunks < 40  # about 1 MiB each, as repositories of November were cut (not 80)
    _, second = store.backup([src])
    assert second.chunks_new == 0 and second.chunks == first.chunks


def test_damaged_chunk_sizes_in_the_config_are_named(tmp_path: Path) -> None:
    src = tmp_path / "note.txt"
    src.write_bytes(b"x" * 1000)
    store = Store(tmp_path)
    store.writer_repo().close()
    config = json.loads(store.target.get("config"))
    config["cdc"] = [0, 1, "x"]
    store.target.put("config", json.dumps(config).encode())
    with pytest.raises(RepositoryCorrupt, match=r"config is damaged \(chunk sizes"):
        store.backup([src])


def test_the_writer_cannot_read_back_what_it_wrote(tmp_path: Path) -> None:
    src = tmp_path / "secret.txt"
    src.write_bytes(b"salaires 2026: confidentiel " * 1000)
    store = Store(tmp_path)
    store.backup([src])
    raw = b"".join(p.read_bytes() for p in (tmp_path / "baie").rglob("*") if p.is_file())
    assert b"salaires" not in raw and b"secret.txt" not in raw
    repo = store.writer_repo()
    info = repo.find_snapshot("latest")
    assert info.meta["files"] == 1  # the MSP sees figures...
    stranger = generate_private_key()
    with pytest.raises(KeyMismatch, match="sealed to another key"):
        repo.snapshot_tree(info, stranger)  # ...never names or data without the client key
    repo.close()


def test_restore_with_the_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"x" * 100)
    store = Store(tmp_path)
    store.backup([src])
    with pytest.raises(KeyMismatch, match="sealed to another key"):
        from orchestrator.store.repository import Repository

        Repository.open_with_key(store.target, generate_private_key(), tmp_path / "c")


def test_restore_of_one_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 40)
    store = Store(tmp_path)
    store.backup([src])
    repo = store.reader_repo()
    out = tmp_path / "out"
    only = str(src / "dir3")
    stats = Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out, only=only)
    assert stats.files == len(list((src / "dir3").iterdir()))
    assert not (restored(out, src) / "dir4").exists()
    with pytest.raises(StoreError, match="holds nothing under"):
        Restorer(repo, store.key).restore(repo.find_snapshot("latest"), out, only="/nope")
    repo.close()


def test_a_damaged_chunk_stops_the_restore_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    store = Store(tmp_path)
    store.backup([src])
    pack = next((tmp_path / "baie" / "data").rglob("*"))
    while pack.is_dir():
        pack = next(pack.iterdir())
    raw = bytearray(pack.read_bytes())
    raw[1000] ^= 0x01
    pack.write_bytes(bytes(raw))
    repo = store.reader_repo()
    with pytest.raises(RepositoryCorrupt, match=r"a\.bin.*does not decrypt|does not decrypt"):
        Restorer(repo, store.key).restore(repo.find_snapshot("latest"), tmp_path / "out")
    assert not list((tmp_path / "out").rglob("a.bin"))  # no half-restored file left
    repo.close()
