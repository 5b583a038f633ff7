"""Trials: damage of every kind on the baie, then what a user gets from it.

A repository with two restore points is built once (and its second copy, as the nightly copy
makes it); each trial copies it, damages the first baie one way (delete, truncate, flip a
byte, swap two files, empty a file; in packs, index files, snapshots, the config; or a stray
file left by Finder or Explorer), then:

1. restores every file of every original restore point, alone, with a fresh cache: each is
   right (byte-identical), or refused with an error naming it — never wrong;
2. runs the next backup (through ``backing_up``, as jobs/run.py does), with or without the
   second copy to repair from;
3. restores the newest restore point in full (it must be right: the backup healed), and every
   original restore point again.

The figures of every trial are gathered and checked at the end (``test_figures``), and
printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.sftp import SftpTarget
from orchestrator.baie.target import Target
from orchestrator.errors import HvbError
from orchestrator.jobs.copy import copy_repository
from orchestrator.mover.source import LocalSource
from orchestrator.store import format as fmt
from orchestrator.store.backup import backup_paths
from orchestrator.store.keys import PrivateKey, generate_private_key
from orchestrator.store.repository import Repository, SnapshotInfo
from orchestrator.store.restore import Restorer
from orchestrator.store.verify import verify
from tests.servers import sshd
from tests.store.helpers import restored

PACK = 96 * 1024  # small packs: a few chunks each, so that one pack is one file's piece
FIGURES: dict[str, Counter[str]] = defaultdict(Counter)


@dataclass
class World:
    root: Path
    key: PrivateKey
    writer: bytes
    src: Path
    # snapshot id -> {path as recorded: sha256 of its bytes}
    points: dict[str, dict[str, str]]

    @property
    def baie_a(self) -> Path:
        return self.root / "baie-a"

    def target(self, which: str = "a") -> LocalTarget:
        return LocalTarget(f"site-{which}", self.root / f"baie-{which}")

    def writer_repo(self, target: Target, other: Target | None = None) -> Repository:
        return Repository.open_for_writing(target, self.writer, [self.key.public],
                                           self.root / "cache",
                                           **({"other": other} if other else {}))

    def reader(self, target: Target) -> Repository:
        cache = self.root / f"reader-{os.urandom(4).hex()}"
        repo = Repository.open_with_key(target, self.key, cache)
        repo.sync_index()
        return repo


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(src: Path) -> dict[str, str]:
    return {str(p): _sha(p.read_bytes()) for p in sorted(src.rglob("*")) if p.is_file()}


def _backup(world: World, target: Target, other: Target | None = None) -> SnapshotInfo:
    repo = world.writer_repo(target, other)
    try:
        info, _stats = backup_paths(repo, LocalSource("local"), [str(world.src)],
                                    {"client": "acme", "job": "erp", "run": "r"},
                                    pack_size=PACK, **({"other": other} if other else {}))
        return info
    finally:
        repo.close()


def _build(root: Path) -> World:
    rng = random.Random(7)
    src = root / "src"
    (src / "compta").mkdir(parents=True)
    (src / "compta" / "grand-livre.bak").write_bytes(rng.randbytes(700_000))
    (src / "factures.txt").write_bytes(b"facture client 2026 " * 20_000)
    (src / "photo.jpg").write_bytes(rng.randbytes(300_000))
    world = World(root, generate_private_key(), os.urandom(32), src, {})
    first = _backup(world, world.target())
    world.points[first.id] = _files(src)
    with (src / "compta" / "grand-livre.bak").open("r+b") as f:
        f.seek(350_000)
        f.write(rng.randbytes(5000))
    (src / "nouveau.docx").write_bytes(rng.randbytes(200_000))
    second = _backup(world, world.target())
    world.points[second.id] = _files(src)
    copy_repository(world.target("a"), world.target("b"))  # the nightly second copy
    return world


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build(tmp_path_factory.mktemp("damage-template"))


@pytest.fixture
def world(template: World, tmp_path: Path) -> World:
    root = tmp_path / "w"
    shutil.copytree(template.root, root, symlinks=True)
    # The source as it is now (the last backup's content) comes with the copy; the points
    # keep the names they recorded (the template's).
    return World(root, template.key, template.writer, root / "src", dict(template.points))


# -- damage ---------------------------------------------------------------------------------

def _pack_of(world: World, file_name: str) -> Path:
    """The pack holding the first chunk of ``file_name`` in the newest restore point."""
    repo = world.reader(world.target())
    try:
        info = repo.snapshots()[-1]
        tree = repo.snapshot_tree(info, world.key)
        entry = next(f for f in tree["files"] if f["path"].endswith(file_name))
        ids = repo.snapshot_header(info).chunk_ids
        chunk = bytes(ids[entry["first"] * 32:(entry["first"] + 1) * 32])
        hit = repo.cache.lookup(chunk)
        assert hit is not None
        return world.baie_a / fmt.pack_name(hit[0])
    finally:
        repo.close()


def _files_in(world: World, folder: str) -> list[Path]:
    return sorted(p for p in (world.baie_a / folder).rglob("*") if p.is_file())


def _victims(world: World, place: str) -> list[Path]:
    if place == "data":
        first = _pack_of(world, "factures.txt")
        return [first, next(p for p in _files_in(world, "data") if p != first)]
    if place == "snapshots":  # the newest: the rolling read comes to it last
        newest = list(world.points)[-1]
        files = _files_in(world, "snapshots")
        named = next(p for p in files if p.name == newest)
        return [named, next(p for p in files if p != named)]
    files = _files_in(world, place) if place != "config" else [world.baie_a / "config"]
    return files[:2]


def damage(world: World, kind: str, place: str) -> list[Path]:
    """Damage the first baie; returns the files changed (or removed)."""
    victims = _victims(world, place)
    one = victims[0]
    if kind == "delete":
        one.unlink()
    elif kind == "truncate":
        one.write_bytes(one.read_bytes()[: one.stat().st_size // 2])
    elif kind == "flip":
        raw = bytearray(one.read_bytes())
        raw[len(raw) // 3] ^= 0x20
        one.write_bytes(bytes(raw))
    elif kind == "empty":
        one.write_bytes(b"")
    elif kind == "swap":
        a, b = victims[0].read_bytes(), victims[1].read_bytes()
        victims[0].write_bytes(b)
        victims[1].write_bytes(a)
        return victims
    else:
        raise AssertionError(kind)
    return [one]


STRAYS = {"data": "Thumbs.db", "index": "desktop.ini", "snapshots": ".DS_Store"}


def stray(world: World, place: str) -> Path:
    folder = world.baie_a / place
    if place == "data":
        folder = next(p for p in folder.iterdir() if p.is_dir())
    path = folder / STRAYS[place]
    path.write_bytes(b"\x00\x01[.ShellClassInfo]\r\nIconResource=x\r\n")
    return path


# -- what a user gets -----------------------------------------------------------------------

def restore_all(world: World, target: Target, figures: Counter[str], *, when: str
                ) -> dict[str, dict[str, str]]:
    """Restore every file of every original point alone; returns {point: {path: outcome}}
    (right / refused) and counts them. A wrong byte fails the test at once."""
    outcomes: dict[str, dict[str, str]] = {}
    try:
        repo = world.reader(target)
    except HvbError as exc:
        assert "config" in str(exc), exc
        for sid, files in world.points.items():
            outcomes[sid] = dict.fromkeys(files, "refused")
            figures[f"{when}:refused"] += len(files)
        return outcomes
    try:
        present = {s.id: s for s in repo.snapshots()}
        for sid, files in world.points.items():
            outcomes[sid] = {}
            for path, sha in files.items():
                out = world.root / f"out-{os.urandom(4).hex()}"
                if sid not in present:
                    outcomes[sid][path] = "refused"
                    figures[f"{when}:refused"] += 1
                    continue
                try:
                    Restorer(repo, world.key).restore(present[sid], out, only=path)
                except HvbError as exc:
                    assert "holds nothing under" not in str(exc), exc
                    assert Path(path).name in str(exc) or sid[:12] in str(exc), exc
                    leftovers = [p for p in out.rglob("*") if p.is_file()] if out.exists() \
                        else []
                    assert leftovers == [], f"a refused restore left {leftovers}"
                    outcomes[sid][path] = "refused"
                    figures[f"{when}:refused"] += 1
                    continue
                got = _sha(restored(out, Path(path)).read_bytes())
                if got != sha:
                    figures[f"{when}:wrong"] += 1
                    pytest.fail(f"WRONG BYTES restored for {path} of {sid[:12]}")
                outcomes[sid][path] = "right"
                figures[f"{when}:right"] += 1
                shutil.rmtree(out)
        return outcomes
    finally:
        repo.close()


def newest_restores(world: World, target: Target, source_now: dict[str, str]) -> bool:
    repo = world.reader(target)
    try:
        info = repo.snapshots()[-1]
        out = world.root / "newest"
        Restorer(repo, world.key).restore(info, out)
        return all(_sha(restored(out, Path(p)).read_bytes()) == h for p, h in source_now.items())
    finally:
        repo.close()


def trial(world: World, name: str, apply: Callable[[], object], *, repair: bool,
          named: Callable[[Repository], bool], all_back: bool = True, nights: int = 1
          ) -> dict[str, dict[str, str]]:
    """One trial; returns what the restores before healing gave. ``all_back``: with the
    second copy to repair from, every original point is restorable again afterwards, after
    ``nights`` backups (a damage only the rolling sample finds waits for its turn)."""
    figures = FIGURES[name]
    figures["trials"] += 1
    apply()
    before = restore_all(world, world.target(), figures, when="before")
    # The damage is named: by the listing (a reader's), or by verify with the key.
    with suppress(HvbError):
        repo = world.reader(world.target())
        try:
            repo.snapshots()  # the listing names what it skips
            assert named(repo), f"{name}: the damage is not named"
        finally:
            repo.close()
    other = world.target("b") if repair else None
    for _night in range(nights):
        _backup(world, world.target(), other)  # the next backup heals
    source_now = _files(world.src)
    assert newest_restores(world, world.target(), source_now), f"{name}: newest not whole"
    figures["healed"] += 1
    after = restore_all(world, world.target(), figures, when="after")
    if repair and all_back:
        assert all(o == "right" for files in after.values() for o in files.values()), \
            f"{name}: with the second copy to repair from, every point is back: {after}"
    return before


def _verify_names_it(world: World) -> Callable[[Repository], bool]:
    def named(repo: Repository) -> bool:
        report = verify(repo, subset=1.0, key=world.key)
        return not report.ok
    return named


KINDS = ["delete", "truncate", "flip", "swap", "empty"]


@pytest.mark.parametrize("repair", [False, True], ids=["resend", "repair"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_pack(world: World, kind: str, repair: bool) -> None:
    before = trial(world, f"pack {kind}", lambda: damage(world, kind, "data"), repair=repair,
                   named=_verify_names_it(world))
    for files in before.values():  # only the files the pack held are refused
        assert {p for p, o in files.items() if o == "refused"} <= {
            p for p in files if p.endswith(("factures.txt", "grand-livre.bak", "photo.jpg",
                                            "nouveau.docx"))}
        assert any(o == "refused" for o in files.values())


def test_a_damaged_pack_is_not_counted_on(world: World) -> None:
    """The bug: after a pack was lost, the next backup deduplicated against the index and
    its restore point could not be restored."""
    damage(world, "delete", "data")
    _backup(world, world.target())
    assert newest_restores(world, world.target(), _files(world.src))


@pytest.mark.parametrize("repair", [False, True], ids=["resend", "repair"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_index_file(world: World, kind: str, repair: bool) -> None:
    def named(repo: Repository) -> bool:
        return kind == "delete" or any(n.startswith("index/") for n in repo.damaged_files)

    before = trial(world, f"index {kind}", lambda: damage(world, kind, "index"), repair=repair,
                   named=named)
    # The packs an index file described are adopted from their own headers: all restorable.
    assert all(o == "right" for files in before.values() for o in files.values())


@pytest.mark.parametrize("repair", [False, True], ids=["resend", "repair"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_snapshot(world: World, kind: str, repair: bool) -> None:
    hit: list[str] = []

    def apply() -> None:
        hit.extend(p.name for p in damage(world, kind, "snapshots"))

    def named(repo: Repository) -> bool:
        return kind == "delete" or {f"snapshots/{h}" for h in hit} <= set(repo.damaged_files)

    # A snapshot file missing from the first baie is not put back from the second: retention
    # may have forgotten it there (and prune freed its chunks); it is restored from the second.
    # A flip that kept the size is read back when its turn comes: one snapshot file a night,
    # the one read longest ago (two files here: by the second night).
    before = trial(world, f"snapshot {kind}", apply, repair=repair, named=named,
                   all_back=kind != "delete", nights=2 if kind == "flip" else 1)
    for sid, files in before.items():
        expected = "refused" if sid in hit else "right"
        assert set(files.values()) == {expected}, (sid[:12], files)
    if kind == "delete":
        assert set(restore_all(world, world.target("b"), Counter(), when="b")[hit[0]]
                   .values()) == {"right"}


@pytest.mark.parametrize("place", ["data", "index", "snapshots"])
def test_stray_file(world: World, place: str) -> None:
    path: list[Path] = []

    def named(repo: Repository) -> bool:
        return any(n.endswith(STRAYS[place]) for n in repo.strays.names)

    before = trial(world, f"stray {STRAYS[place]}", lambda: path.append(stray(world, place)),
                   repair=False, named=named)
    assert all(o == "right" for files in before.values() for o in files.values())
    assert path[0].exists()  # not ours: left where it is
    report = verify(world.reader(world.target()), subset=1.0, key=world.key)
    assert report.ok, [str(p) for p in report.problems]
    assert [s for s in report.strays if s.endswith(STRAYS[place])]


@pytest.mark.parametrize("kind", ["flip", "truncate", "empty", "delete"])
def test_damaged_config_is_copied_back_from_the_other_baie(world: World, kind: str) -> None:
    before = trial(world, f"config {kind}", lambda: damage(world, kind, "config"),
                   repair=True, named=lambda repo: True)
    if kind != "delete":
        assert {o for files in before.values() for o in files.values()} == {"refused"}


def test_damaged_config_without_the_other_baie_is_refused_by_name(world: World) -> None:
    damage(world, "flip", "config")
    with pytest.raises(HvbError, match=r"site-a: the repository config is unreadable"):
        _backup(world, world.target())


# -- over SFTP ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with sshd(tmp_path_factory.mktemp("sshd-damage")) as server:
        yield server


def test_flipped_pack_over_sftp_is_named_and_healed(tmp_path: Path, sftp_server: object
                                                    ) -> None:
    from tests.servers import SshServer

    assert isinstance(sftp_server, SshServer)
    folder = sftp_server.root / tmp_path.name
    folder.mkdir()

    def target() -> SftpTarget:
        return SftpTarget("site-a", "127.0.0.1", port=sftp_server.port,
                          user=sftp_server.user, key_file=sftp_server.key_file,
                          known_hosts=sftp_server.known_hosts, root=str(folder))

    rng = random.Random(3)
    src = tmp_path / "src"
    src.mkdir()
    (src / "base.mdf").write_bytes(rng.randbytes(600_000))
    (src / "notes.txt").write_bytes(b"note de frais " * 30_000)
    world = World(tmp_path, generate_private_key(), os.urandom(32), src, {})
    sftp = target()
    try:
        first = _backup(world, sftp)
        world.points[first.id] = _files(src)
        world_a = World(tmp_path, world.key, world.writer, src, world.points)
        packs = sorted(p for p in (folder / "data").rglob("*") if p.is_file())
        raw = bytearray(packs[0].read_bytes())
        raw[len(raw) // 2] ^= 0x01
        packs[0].write_bytes(bytes(raw))
        figures = FIGURES["pack flip (sftp)"]
        figures["trials"] += 1
        before = restore_all(world_a, sftp, figures, when="before")
        assert "refused" in before[first.id].values()
        repo = world.reader(sftp)
        try:
            report = verify(repo, subset=1.0, key=world.key)
            assert [p.pack for p in report.problems] == [packs[0].name]
        finally:
            repo.close()
        _backup(world, sftp)
        assert newest_restores(world, sftp, _files(src))
        figures["healed"] += 1
        restore_all(world_a, sftp, figures, when="after")
        assert figures["after:refused"] == 0
    finally:
        sftp.close()


def test_figures() -> None:
    """Runs last in this file: every trial's outcomes together (0 wrong)."""
    if not FIGURES:
        pytest.skip("run with the trials above")
    total: Counter[str] = Counter()
    lines = [f"{'trial':<22} {'n':>3} {'before: right/refused/wrong':>28} "
             f"{'after: right/refused/wrong':>27} {'healed':>6}"]
    for name, c in sorted(FIGURES.items()):
        total.update(c)
        lines.append(f"{name:<22} {c['trials']:>3} "
                     f"{c['before:right']:>14}/{c['before:refused']}/{c['before:wrong']:<6} "
                     f"{c['after:right']:>15}/{c['after:refused']}/{c['after:wrong']:<6} "
                     f"{c['healed']:>6}")
    lines.append(f"{'total':<22} {total['trials']:>3} {total['before:right']:>14}/"
                 f"{total['before:refused']}/{total['before:wrong']:<6} "
                 f"{total['after:right']:>15}/{total['after:refused']}/"
                 f"{total['after:wrong']:<6} {total['healed']:>6}")
    print("\n" + "\n".join(lines))
    assert total["before:wrong"] == total["after:wrong"] == 0
    assert total["healed"] == total["trials"]


def test_prune_stops_while_a_snapshot_file_is_damaged(world: World) -> None:
    from orchestrator.store.prune import prune

    [victim] = damage(world, "flip", "snapshots")
    packs = _files_in(world, "data")
    repo = world.writer_repo(world.target())
    try:
        with pytest.raises(HvbError, match=rf"prune stopped, nothing deleted: 1 snapshot "
                                           rf"file\(s\) are damaged \(snapshots/{victim.name}\)"):
            prune(repo)
    finally:
        repo.close()
    assert _files_in(world, "data") == packs  # nothing deleted


def test_each_backup_reads_back_little_and_every_pack_in_turn(world: World) -> None:
    """The checks cost a listing, a few headers and a bounded sample: the rolling sample goes
    through every pack before reading one again, so a flip that kept the size is found."""
    from orchestrator.store.health import check

    packs = {p.name for p in _files_in(world, "data")}
    assert len(packs) >= 5
    victim = _files_in(world, "data")[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x04  # same size: only reading it back shows it
    victim.write_bytes(bytes(raw))
    repo = world.writer_repo(world.target())
    try:
        read: list[int] = []
        found_at = None
        for night in range(len(packs) + 1):
            repo.sync_index()
            health = check(repo, full_check_bytes=1, header_checks=0,
                           now=time.time() + night * 86400)
            read.append(health.packs_checked)
            if health.packs and found_at is None:
                found_at = night
                assert [d.name for d in health.packs] == [f"data/{victim.parent.name}/"
                                                          f"{victim.name}"]
                assert "does not match its name" in health.packs[0].what
        assert set(read) == {1}  # one pack a night with this budget, never all of them
        assert found_at is not None and found_at < len(packs)
    finally:
        repo.close()


class _Counting(LocalTarget):
    """The real local baie, counting whole-file reads per folder."""

    def __init__(self, label: str, root: Path) -> None:
        super().__init__(label, root)
        self.whole: Counter[str] = Counter()

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset == 0 and length is None:
            self.whole[name.split("/", 1)[0]] += 1
        return super().get(name, offset, length)


def test_the_checks_before_a_backup_do_not_read_every_file(world: World) -> None:
    from orchestrator.store.health import check

    target = _Counting("site-a", world.baie_a)
    repo = world.writer_repo(target)
    try:
        for _night in range(2):
            target.whole.clear()
            repo.sync_index()
            health = check(repo, full_check_bytes=1)
            assert not health.found
            # one pack and one snapshot file read back whole; the rest is a listing
            assert (target.whole["data"], target.whole["snapshots"]) == (1, 1)
            assert target.whole["index"] == 0
    finally:
        repo.close()


def test_with_the_second_copy_unreachable_the_chunks_are_sent_again(world: World) -> None:
    for victim in _files_in(world, "data")[:3]:
        victim.unlink()
    gone = LocalTarget("site-b", world.root / "baie-b", mount=world.root / "unmounted")
    repo = world.writer_repo(world.target())
    try:
        from orchestrator.store.backup import backing_up

        with backing_up(repo, "backup erp", other=gone, pack_size=PACK) as run:
            run.add_path(LocalSource("local"), str(world.src))
            run.commit({"client": "acme", "job": "erp"})
        assert run.health is not None
        assert [d.repaired_from for d in run.health.packs] == [None, None, None]
        assert "0 copied back from the other baie, 3 dropped" in run.health.summary()
    finally:
        repo.close()
    assert newest_restores(world, world.target(), _files(world.src))


def test_damaged_and_refused_snapshot_files_are_both_named_and_skipped(world: World) -> None:
    """A snapshot file whose bytes no longer match its name (damaged) and one named by its
    bytes that this writer did not sign (refused: here a real snapshot with bytes appended):
    both are left out and named, each as what it is; the intact point is listed, verified and
    restored; prune stops naming both, deleting nothing."""
    from orchestrator.errors import RepositoryCorrupt
    from orchestrator.store.prune import prune

    newest, oldest = list(world.points)[-1], next(iter(world.points))
    [victim] = damage(world, "flip", "snapshots")  # the newest (see _victims)
    assert victim.name == newest
    padded = (world.baie_a / "snapshots" / oldest).read_bytes() + bytes(16)
    planted = _sha(padded)
    (world.baie_a / "snapshots" / planted).write_bytes(padded)
    repo = world.reader(world.target())
    try:
        assert [s.id for s in repo.snapshots()] == [oldest]
        assert set(repo.damaged_snapshots()) == {f"snapshots/{newest}"}
        assert set(repo.refused) == {f"snapshots/{planted}"}
        with pytest.raises(RepositoryCorrupt, match=rf"snapshot {newest[:12]} is damaged on "
                                                    r"this baie .*restore it from the other"):
            repo.find_snapshot(newest[:12])
        with pytest.raises(RepositoryCorrupt, match=rf"snapshot {planted[:12]} is refused"):
            repo.find_snapshot(planted[:12])
        out = world.root / "out"
        Restorer(repo, world.key).restore(repo.find_snapshot("latest"), out)
        for path, sha in world.points[oldest].items():
            assert _sha(restored(out, Path(path)).read_bytes()) == sha
        problems = [p.what for p in verify(repo, subset=1.0, key=world.key).problems]
        assert any(f"snapshots/{newest} is damaged" in p for p in problems), problems
        assert any(f"snapshot {planted[:12]} is refused, never restored" in p
                   for p in problems), problems
    finally:
        repo.close()
    packs = _files_in(world, "data")
    writer = world.writer_repo(world.target())
    try:
        with pytest.raises(HvbError) as stopped:
            prune(writer)
    finally:
        writer.close()
    assert "prune stopped, nothing deleted: 1 snapshot file(s) are damaged" in str(stopped.value)
    assert "1 snapshot file(s) are refused" in str(stopped.value)
    assert _files_in(world, "data") == packs
    assert (world.baie_a / "snapshots" / planted).exists()  # left for whoever investigates
