"""The local index cache: which chunk is in which pack, on disk, for dedup look-ups.

A SQLite file per repository in the orchestrator's state folder. It holds one row per chunk
(48 bytes of data), so memory stays flat however big the repository: a 2 TB VM is 4 million
rows on disk, not 4 million Python objects. It is only a cache: :meth:`IndexCache.sync` rebuilds
it from the repository's index files (and adopts packs that a crashed backup uploaded but never
indexed, by reading their headers).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from orchestrator.store.format import PackEntry

CACHE_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY, pack BLOB NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    raw_length INTEGER NOT NULL, flags INTEGER NOT NULL, key_index INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (id BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_files (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack);
"""


class IndexCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-16000")  # 16 MB page cache, whatever the size
        if self._db.execute("PRAGMA user_version").fetchone()[0] != CACHE_VERSION:
            # A cache of another layout: it is only a cache, start it again.
            self._db.executescript("DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS packs; "
                                   "DROP TABLE IF EXISTS index_files;")
            self._db.execute(f"PRAGMA user_version = {CACHE_VERSION}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()  # one connection, used by the uploader threads too

    def close(self) -> None:
        self._db.close()

    def has(self, chunk_id: bytes) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM chunks WHERE id = ?",
                                    (chunk_id,)).fetchone() is not None

    def lookup(self, chunk_id: bytes) -> tuple[bytes, PackEntry] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT pack, offset, length, raw_length, flags, key_index FROM chunks "
                "WHERE id = ?", (chunk_id,)).fetchone()
        if row is None:
            return None
        return bytes(row[0]), PackEntry(chunk_id, row[1], row[2], row[3], row[4], row[5])

    def add_pack(self, pack_id: bytes, size: int, entries: Iterable[PackEntry], *,
                 moved: bool = False) -> None:
        """Record a pack. A chunk already known keeps its place, unless ``moved`` (prune
        copied it into this pack and is about to delete the old one)."""
        verb = "REPLACE" if moved else "IGNORE"
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO packs VALUES (?, ?)", (pack_id, size))
            self._db.executemany(
                f"INSERT OR {verb} INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((e.chunk_id, pack_id, e.offset, e.length, e.raw_length, e.flags, e.key_index)
                 for e in entries))

    def remove_packs(self, pack_ids: Iterable[bytes]) -> None:
        with self._transaction():
            for pack_id in pack_ids:
                self._db.execute("DELETE FROM chunks WHERE pack = ?", (pack_id,))
                self._db.execute("DELETE FROM packs WHERE id = ?", (pack_id,))

    def packs(self) -> dict[bytes, int]:
        with self._lock:
            return {bytes(r[0]): r[1] for r in self._db.execute("SELECT id, size FROM packs")}

    def pack_entries(self, pack_id: bytes) -> list[PackEntry]:
        with self._lock:
            rows = self._db.execute("SELECT id, offset, length, raw_length, flags, key_index "
                                    "FROM chunks WHERE pack = ? ORDER BY offset",
                                    (pack_id,)).fetchall()
        return [PackEntry(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def known_index_files(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT name FROM index_files")}

    def mark_index_files(self, names: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO index_files VALUES (?)",
                                 ((n,) for n in names))

    def forget_index_files(self, names: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM index_files WHERE name = ?", ((n,) for n in names))

    def chunk_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def _transaction(self) -> _Tx:
        return _Tx(self._db, self._lock)


class _Tx:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
