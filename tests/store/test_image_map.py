"""Disk images send only the 64 KiB blocks that changed, and restore exactly, night after night.

The image map is a local cache: lost, damaged, or pointing at data that prune removed, it only
costs bytes (whole regions are sent again), never correctness.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.baie.local import LocalTarget
from orchestrator.errors import BaieError, RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.prune import forget, prune
from orchestrator.store.repository import SnapshotInfo
from orchestrator.store.restore import Restorer
from tests.store.helpers import Store, make_image

KIB = 1024
BLOCK = 64 * KIB


def write_blocks(path: Path, blocks: list[int], seed: int) -> None:
    """Rewrite whole 64 KiB blocks with new random bytes."""
    rng = random.Random(seed)
    with path.open("r+b") as f:
        for index in blocks:
            f.seek(index * BLOCK)
            f.write(rng.randbytes(BLOCK))


def restore_bytes(store: Store, info: SnapshotInfo, tmp: Path, name: str) -> bytes:
    repo = store.reader_repo(f"cache-{name}")
    try:
        out = tmp / f"out-{name}"
        Restorer(repo, store.key).restore(info, out)
        (restored,) = [p for p in out.rglob("*") if p.is_file()]
        return restored.read_bytes()
    finally:
        repo.close()


def maps_of(store: Store) -> list[Path]:
    return sorted((store.root / "cache").rglob("*.map"))


def backed_up_image(tmp_path: Path, mib: int, target: LocalTarget | None = None
                    ) -> tuple[Path, Store, SnapshotInfo]:
    """A disk image of ``mib`` MiB and its first backup."""
    src = tmp_path / "disk.vhdx"
    make_image(src, mib)
    store = Store(tmp_path, target)
    info, _ = store.backup([src])
    return src, store, info


def test_scattered_writes_send_only_their_blocks(tmp_path: Path) -> None:
    src = tmp_path / "ERP01.vhdx"
    make_image(src, 32)  # 64 regions of 512 KiB, 512 blocks
    store = Store(tmp_path)
    first, _ = store.backup([src])
    before = src.read_bytes()
    changed = random.Random(7).sample(range(512), 10)  # 2 %, all over the disk
    write_blocks(src, changed, seed=8)
    second, stats = store.backup([src])
    assert stats.bytes_read == 32 << 20
    assert stats.bytes_new == 10 * BLOCK  # not 10 x 512 KiB
    assert stats.bytes_stored < 10 * BLOCK + 40_000  # random blocks: no compression
    assert restore_bytes(store, second, tmp_path, "second") == src.read_bytes()
    assert restore_bytes(store, first, tmp_path, "first") == before
    _, third = store.backup([src])
    assert third.bytes_new == 0 and third.chunks == stats.chunks


def test_a_region_mostly_rewritten_is_stored_whole(tmp_path: Path) -> None:
    src, store, _ = backed_up_image(tmp_path, 4)
    write_blocks(src, [8, 9, 10, 11, 12], seed=3)  # 5 of region 1's 8 blocks
    info, stats = store.backup([src])
    assert stats.bytes_new == 512 * KIB
    assert stats.chunks == 8  # one piece per region: fragmentation undone
    assert restore_bytes(store, info, tmp_path, "r") == src.read_bytes()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nights=st.lists(st.lists(st.tuples(st.integers(0, 4 * 8 - 1),
                                          st.sampled_from(["random", "zero", "copy"])),
                                max_size=12), min_size=1, max_size=5),
       region_kib=st.sampled_from([256, 512]))
def test_every_night_restores_exactly(tmp_path_factory: object,
                                      nights: list[list[tuple[int, str]]],
                                      region_kib: int) -> None:
    """Any sequence of block writes (new data, zeroed blocks, blocks copied from elsewhere in
    the image), backed up night after night: every snapshot restores byte for byte."""
    tmp = tmp_path_factory.mktemp("nights")  # type: ignore[attr-defined]
    src = tmp / "vm.vhdx"
    size = 4 * 512 * KIB + 100 * KIB  # a short last region too
    rng = random.Random(len(nights))
    image = bytearray(rng.randbytes(size))
    store = Store(tmp)
    expected = []
    for writes in [[], *nights]:
        for block, kind in writes:
            at = block * BLOCK
            if kind == "random":
                image[at:at + BLOCK] = rng.randbytes(BLOCK)
            elif kind == "zero":
                image[at:at + BLOCK] = bytes(BLOCK)
            else:
                source = (block * 7 % 32) * BLOCK
                image[at:at + BLOCK] = image[source:source + BLOCK]
        src.write_bytes(image)
        info, _ = store.backup([src], image_chunk=region_kib * KIB)
        expected.append((info, bytes(image)))
    for night, (info, content) in enumerate(expected):
        assert restore_bytes(store, info, tmp, f"n{night}") == content, f"night {night}"


def test_without_its_map_a_backup_sends_whole_regions_and_stays_right(tmp_path: Path) -> None:
    src, store, _ = backed_up_image(tmp_path, 8)
    (image_map,) = maps_of(store)
    image_map.unlink()
    write_blocks(src, [3, 40], seed=1)  # two regions
    info, stats = store.backup([src])
    assert stats.bytes_new == 2 * 512 * KIB
    assert restore_bytes(store, info, tmp_path, "a") == src.read_bytes()
    assert maps_of(store)  # written again: the next night is block by block again
    write_blocks(src, [5], seed=2)
    _, stats = store.backup([src])
    assert stats.bytes_new == BLOCK


def test_a_damaged_map_is_ignored_from_the_damage_on(tmp_path: Path) -> None:
    src, store, _ = backed_up_image(tmp_path, 8)
    (image_map,) = maps_of(store)
    raw = bytearray(image_map.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # somewhere in the middle region's record
    image_map.write_bytes(bytes(raw))
    write_blocks(src, [1, 127], seed=4)  # one block in the first region, one in the last
    info, stats = store.backup([src])
    assert stats.bytes_new == BLOCK + 512 * KIB  # first region still block by block
    assert restore_bytes(store, info, tmp_path, "d") == src.read_bytes()


def test_a_map_pointing_at_pruned_data_is_not_trusted(tmp_path: Path) -> None:
    src, store, first = backed_up_image(tmp_path, 4)
    repo = store.writer_repo()
    forget(repo, [first])
    prune(repo)  # every chunk of the image is gone; the map still names them
    repo.close()
    write_blocks(src, [2], seed=5)
    info, stats = store.backup([src])
    assert stats.bytes_new == 4 << 20  # everything again, nothing pointing into the void
    assert restore_bytes(store, info, tmp_path, "p") == src.read_bytes()


class FailingTarget(LocalTarget):
    fail_snapshot = False

    def put(self, name: str, data: bytes) -> None:
        if self.fail_snapshot and name.startswith("snapshots/"):
            raise BaieError(f"{self.label}: no space left on device")
        super().put(name, data)


def test_a_failed_backup_keeps_the_map_of_the_last_good_one(tmp_path: Path) -> None:
    target = FailingTarget("site-a", tmp_path / "baie")
    src, store, _ = backed_up_image(tmp_path, 4, target)
    (image_map,) = maps_of(store)
    kept = image_map.read_bytes()
    write_blocks(src, [0, 1, 2, 3, 4, 5, 6, 7], seed=6)
    target.fail_snapshot = True
    try:
        store.backup([src])
    except BaieError:
        pass
    else:
        raise AssertionError("the backup should have failed")
    assert maps_of(store) == [image_map] and image_map.read_bytes() == kept
    target.fail_snapshot = False
    write_blocks(src, [9], seed=7)
    info, _ = store.backup([src])
    assert restore_bytes(store, info, tmp_path, "f") == src.read_bytes()


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1)), max_size=50))
def test_slices_round_trip(slices: list[tuple[int, int, int]]) -> None:
    decoded = fmt.decode_slices(fmt.encode_slices(slices), "f")
    assert decoded == {i: (o, n) for i, o, n in slices}


def test_damaged_slices_are_named() -> None:
    with pytest.raises(RepositoryCorrupt, match=r"vm\.vhdx: the file's chunk slices"):
        fmt.decode_slices("AAAA", "vm.vhdx")  # 3 bytes: not a whole record
    with pytest.raises(RepositoryCorrupt):
        fmt.decode_slices("not base64!", "vm.vhdx")


def test_maps_left_by_killed_backups_are_removed(tmp_path: Path) -> None:
    src, store, _ = backed_up_image(tmp_path, 2)
    (image_map,) = maps_of(store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = image_map.with_name(f"{image_map.name}.tmp-{dead.pid}-7f00")
    abandoned.write_bytes(b"half a map")
    foreign = image_map.with_name(f"{image_map.name}.tmp-notes")
    foreign.write_bytes(b"someone else's")
    store.backup([src])
    assert not abandoned.exists()
    assert foreign.exists()
    assert maps_of(store) == [image_map]



def test_a_map_that_cannot_be_written_costs_bytes_not_the_backup(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, store, _ = backed_up_image(tmp_path, 4)
    (image_map,) = maps_of(store)
    maps_dir = image_map.parent
    for old in maps_dir.iterdir():
        old.unlink()
    maps_dir.rmdir()
    maps_dir.write_bytes(b"")  # the folder cannot be made: as with a full or read-only disk
    write_blocks(src, [2], seed=9)
    info, stats = store.backup([src])  # succeeds all the same
    assert stats.bytes_new == 512 * KIB  # no map to compare with: the whole region
    assert restore_bytes(store, info, tmp_path, "w") == src.read_bytes()
    assert "image map" in caplog.text and "cannot be written" in caplog.text
