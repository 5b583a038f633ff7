"""A snapshot whose file names would lead outside --to (a hostile source, a damaged file list)
restores the other files and refuses those, by name; nothing is written outside --to."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

from orchestrator.hosts.simworld import volume_path
from orchestrator.mover.source import LocalSource
from orchestrator.store.backup import backup_paths
from orchestrator.store.restore import Restorer
from orchestrator.store.restorepath import UnsafeName, restore_parts
from tests.store.helpers import Store


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_linux_file_named_with_backslashes_and_dots_stays_inside(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"facture")
    # Enough ..\ to climb from --to/<path of src> up to the folder holding --to.
    hostile = "\\".join([".."] * (len(src.parts) + 1) + ["x"])
    (src / hostile).write_bytes(b"forged")
    store = Store(tmp_path)
    info, _ = store.backup([src])
    box = tmp_path / "box"
    to = box / "to"
    repo = store.reader_repo()
    stats = Restorer(repo, store.key).restore(info, to)
    repo.close()
    assert {p.split("/")[0] for p in _listing(box)} == {"to"}  # nothing beside --to
    assert (to / Path(*src.parts[1:]) / "ok.txt").read_bytes() == b"facture"
    assert stats.files == 1
    assert [(r.name, r.reason) for r in stats.refused] == [(str(src / hostile),
                                                            "goes up a folder (..)")]


def _windows_store(tmp_path: Path) -> tuple[Store, object, Path]:
    """A snapshot made as a simulated host's capture records it: drive paths read through the
    host's volume folders, with names Windows itself could never produce."""
    root = tmp_path / "host"
    partages = root / "volumes" / "D" / "Partages"
    partages.mkdir(parents=True)
    (root / "volumes" / "C").mkdir()
    (partages / "ok.txt").write_bytes(b"facture")
    # Listed as one name with backslashes; read back (split as Windows does) from the host root.
    (partages / "..\\..\\..\\evil").write_bytes(b"")
    (root / "evil").write_bytes(b"forged 1")
    (partages / "NUL.txt").write_bytes(b"device")
    (partages / "CON").write_bytes(b"device")
    (root / "X").write_bytes(b"forged 2")
    store = Store(tmp_path)
    repo = store.writer_repo()
    source = LocalSource("HV01", mapper=partial(volume_path, root))
    info, _ = backup_paths(repo, source, ["D:\\Partages", "D:\\..\\..\\X", "C:..\\..\\X"],
                           {"client": "acme", "job": "partages", "run": "r1"})
    repo.close()
    return store, info, root


def test_windows_names_with_dots_drives_and_devices_are_refused_by_name(tmp_path: Path) -> None:
    store, info, _root = _windows_store(tmp_path)
    box = tmp_path / "box"
    to = box / "to"
    repo = store.reader_repo()
    stats = Restorer(repo, store.key).restore(info, to)  # type: ignore[arg-type]
    repo.close()
    assert _listing(box) == {"to", "to/D", "to/D/Partages", "to/D/Partages/ok.txt"}
    assert (to / "D" / "Partages" / "ok.txt").read_bytes() == b"facture"
    refused = {r.name: r.reason for r in stats.refused}
    assert refused == {
        "D:\\Partages\\..\\..\\..\\evil": "goes up a folder (..)",
        "D:\\Partages\\CON": "uses a Windows device name ('CON')",
        "D:\\Partages\\NUL.txt": "uses a Windows device name ('NUL.txt')",
        "D:\\..\\..\\X": "goes up a folder (..)",
        "C:..\\..\\X": "is relative to the current folder of drive C:",
    }


def test_a_link_in_the_restore_folder_is_not_written_through(tmp_path: Path) -> None:
    store, info, _root = _windows_store(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    to = tmp_path / "to"
    to.mkdir()
    (to / "D").symlink_to(elsewhere)
    repo = store.reader_repo()
    stats = Restorer(repo, store.key).restore(info, to, only="D:\\Partages\\ok.txt")  # type: ignore[arg-type]
    repo.close()
    assert list(elsewhere.iterdir()) == []
    assert stats.files == 0
    assert [(r.name, r.reason) for r in stats.refused] == [
        ("D:\\Partages\\ok.txt", "D in the restore folder is a link: nothing is written "
                                 "through it")]


@pytest.mark.parametrize(("name", "parts"), [
    ("D:\\Partages\\a.txt", ("D", "Partages", "a.txt")),
    ("d:/Partages/a.txt", ("D", "Partages", "a.txt")),
    ("\\\\NAS\\compta\\2026\\a.txt", ("NAS_compta", "2026", "a.txt")),
    ("/srv/partages/a b.txt", ("srv", "partages", "a b.txt")),
    ("/srv/a\\b", ("srv", "a\\b")),  # a backslash is a letter in a Linux name
    ("/srv/./a", ("srv", "a")),
    ("SQL01\\COMPTA\\COMPTA.bak", ("unc", "SQL01", "COMPTA", "COMPTA.bak")),  # a SQL dump
])
def test_ordinary_names_keep_their_place(name: str, parts: tuple[str, ...]) -> None:
    assert restore_parts(name, windows_target=False) == parts


@pytest.mark.parametrize(("name", "reason"), [
    ("D:\\..\\..\\X", "goes up a folder"),
    ("C:..\\..\\X", "current folder of drive C:"),
    ("C:X", "current folder of drive C:"),
    ("\\Windows\\x", "root of an unknown drive"),
    ("\\\\?\\C:\\x", "device path"),
    ("\\\\.\\PhysicalDrive0", "device path"),
    ("\\\\server", "without server and share"),
    ("\\\\..\\..\\x", "goes up a folder"),
    ("D:\\a\\.. \\x", "Windows reads as . or .."),
    ("D:\\a\\b:stream", "colon"),
    ("D:\\a\\com1.log", "device name"),
    ("D:\\a\\LPT9", "device name"),
    ("D:\\a\\aux .txt", "device name"),
    ("/srv/../etc/passwd", "goes up a folder"),
    ("/srv/..\\..\\x", "goes up a folder"),
    ("/srv/a\x00b", "NUL byte"),
    ("/srv/a\nb", "control character"),
    ("/", "names no file"),
    ("SQL01\\..\\..\\x", "goes up a folder"),
    ("..\\..\\x", "goes up a folder"),
])
def test_names_that_could_leave_the_folder_are_refused(name: str, reason: str) -> None:
    with pytest.raises(UnsafeName) as caught:
        restore_parts(name, windows_target=False)
    assert reason in caught.value.reason
    assert caught.value.name == name


def test_on_a_windows_machine_linux_names_are_checked_as_windows_reads_them() -> None:
    assert restore_parts("/srv/CON", windows_target=False) == ("srv", "CON")
    for name in ("/srv/CON", "/srv/a:b", "/srv/..."):
        with pytest.raises(UnsafeName):
            restore_parts(name, windows_target=True)


def test_nothing_is_left_open_or_behind(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    for i in range(5):
        (src / "a" / "b" / f"{i}.txt").write_bytes(os.urandom(1000))
    store = Store(tmp_path)
    info, _ = store.backup([src])
    before = len(os.listdir("/proc/self/fd"))
    repo = store.reader_repo()
    Restorer(repo, store.key).restore(info, tmp_path / "to")
    repo.close()
    assert len(os.listdir("/proc/self/fd")) <= before
    assert not [p for p in (tmp_path / "to").rglob("*") if p.name.startswith(".hvb")
                or p.name.endswith(".hvb-partial")]
