"""Large files of a simulated share, beside its many small documents, written a megabyte at a
time (constant memory whatever their size).

Three kinds, as on an SME's file server, taken in turn: an Outlook mailbox archive (.pst:
messages as text with attachments, growing most days and rewriting some of its index pages),
a ZIP archive (compressed entries: random-looking bytes; now and then an entry is added and the
central directory at its end written again), an installation ISO (2 KiB sectors, never
changed).
"""

from __future__ import annotations

import random
from pathlib import Path

from orchestrator.hosts.simsql import text

MB = 1024 * 1024
KINDS = (("Archives\\boite-mail-{n}.pst", "pst"), ("Archives\\projets-{n}.zip", "zip"),
         ("Logiciels\\installation-{n}.iso", "iso"))
_PST_PAGE = 512


def name_of(index: int) -> str:
    """The share-relative Windows name of the ``index``-th large file."""
    pattern, _kind = KINDS[index % len(KINDS)]
    return pattern.format(n=index // len(KINDS) + 1)


def _kind(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def _content(rng: random.Random, kind: str, size: int) -> bytes:
    if kind == "zip":
        return rng.randbytes(size)
    if kind == "iso":  # sectors of packages (compressed), some text, some zero padding
        roll = rng.random()
        return bytes(size) if roll < 0.1 else text(rng, size) if roll < 0.3 else \
            rng.randbytes(size)
    # pst: messages (text) with attachments (compressed already) in about a third of the bytes
    return text(rng, size) if rng.random() < 0.65 else rng.randbytes(size)


def create(path: Path, size: int, seed: object) -> None:
    """Write a large file of ``size`` bytes whose kind is its suffix."""
    rng = random.Random(f"{seed}:create")
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        written = 0
        while written < size:
            step = min(size - written, 64 * 1024)
            f.write(_content(rng, kind, step))
            written += step


def change(path: Path, seed: object) -> bool:
    """One day on a large file, in place; True when it changed. A mailbox archive changes
    four days in five (new messages appended, a few index pages rewritten), a ZIP archive one
    day in ten (an entry added before a new central directory), an ISO never."""
    rng = random.Random(f"{seed}:day")
    kind = _kind(path)
    size = path.stat().st_size
    if kind == "pst" and rng.random() < 0.8:
        with path.open("r+b") as f:
            for _ in range(8):  # B-tree pages of the message index, header first
                f.seek(rng.randrange(max(1, size // _PST_PAGE)) * _PST_PAGE if _ else 0)
                f.write(_content(rng, kind, _PST_PAGE))
            f.seek(0, 2)
            grow = max(64 * 1024, int(size * rng.uniform(0.001, 0.01)))
            for at in range(0, grow, MB):
                f.write(_content(rng, kind, min(MB, grow - at)))
        return True
    if kind == "zip" and rng.random() < 0.1:
        directory = min(size, max(4096, size // 1000))
        with path.open("r+b") as f:
            f.seek(size - directory)
            entry = max(64 * 1024, int(size * rng.uniform(0.005, 0.03)))
            for at in range(0, entry, MB):
                f.write(rng.randbytes(min(MB, entry - at)))
            f.write(rng.randbytes(directory + 64))
        return True
    return False
