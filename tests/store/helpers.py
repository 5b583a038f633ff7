"""Building blocks for the store tests: a repository on a real folder, sample data."""

from __future__ import annotations

import os
import random
from pathlib import Path

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.target import Target
from orchestrator.mover.source import LocalSource
from orchestrator.store.backup import BackupStats, backup_paths
from orchestrator.store.keys import PrivateKey, generate_private_key
from orchestrator.store.repository import Repository, SnapshotInfo


def make_image(path: Path, mib: int, seed: int = 1) -> None:
    """A disk-image-like file: a mix of empty, text-like and random 64 KiB blocks."""
    rng = random.Random(seed)
    text = b"facture client commande livraison stock " * 2000
    with path.open("wb") as f:
        for _ in range(mib * 16):
            kind = rng.random()
            if kind < 0.3:
                f.write(bytes(65536))
            elif kind < 0.65:
                start = rng.randrange(1000)
                f.write(text[start:start + 65536])
            else:
                f.write(rng.randbytes(65536))


def change_blocks(path: Path, fraction: float, seed: int = 2, block: int = 65536) -> None:
    rng = random.Random(seed)
    blocks = path.stat().st_size // block
    with path.open("r+b") as f:
        for index in rng.sample(range(blocks), max(1, int(blocks * fraction))):
            f.seek(index * block + rng.randrange(block - 4096))
            f.write(rng.randbytes(4096))


def make_tree(root: Path, files: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"dir{i % 13}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(10, 40_000)))


class Store:
    """A client's repository on a local baie, with its key pair and writer secret."""

    def __init__(self, root: Path, target: Target | None = None) -> None:
        self.root = root
        self.key: PrivateKey = generate_private_key()
        self.writer = os.urandom(32)
        self.target = target or LocalTarget("site-a", root / "baie")

    def writer_repo(self) -> Repository:
        return Repository.open_for_writing(self.target, self.writer, [self.key.public],
                                           self.root / "cache")

    def reader_repo(self, cache: str = "reader-cache") -> Repository:
        repo = Repository.open_with_key(self.target, self.key, self.root / cache)
        repo.sync_index()
        return repo

    def backup(self, paths: list[Path], job: str = "erp", **options: object
               ) -> tuple[SnapshotInfo, BackupStats]:
        repo = self.writer_repo()
        try:
            return backup_paths(repo, LocalSource("local"), [str(p) for p in paths],
                                {"client": "acme", "job": job, "run": "r1"}, **options)
        finally:
            repo.close()


def sha_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def restored(to: Path, original: Path) -> Path:
    return to / Path(*original.parts[1:])
