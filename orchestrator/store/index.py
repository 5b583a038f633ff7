"""The local index cache: which chunk is in which pack, on disk, for dedup look-ups.

A SQLite file per repository in the orchestrator's state folder. It holds one row per chunk
(48 bytes of data), so memory stays flat however big the repository: a 2 TB VM is 4 million
rows on disk, not 4 million Python objects. It is only a cache: :meth:`IndexCache.sync` rebuilds
it from the repository's index files (and adopts packs that a crashed backup uploaded but never
indexed, by reading their headers).

A chunk held by several packs (sent again after its first pack was found damaged, or copied by
prune) has one place in ``chunks`` and the others in ``spare``: a restore that finds the first
place damaged reads another, and dropping a pack promotes the spare places of its chunks.
``damaged_packs`` remembers the packs found damaged (never adopted again), ``checked`` when
each pack was last read back, ``snapshot_files`` the size of each snapshot file seen intact and
when it was last read back (the checks of store/health.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from orchestrator.procs import machine_lock
from orchestrator.store.format import PackEntry

# The tables added since (spare, damaged_packs, checked) start empty in an older cache, which
# is right for it: no rebuild of every repository's cache for them.
CACHE_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY, pack BLOB NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    raw_length INTEGER NOT NULL, flags INTEGER NOT NULL, key_index INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (id BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_files (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack);
CREATE TABLE IF NOT EXISTS spare (
    id BLOB NOT NULL, pack BLOB NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    raw_length INTEGER NOT NULL, flags INTEGER NOT NULL, key_index INTEGER NOT NULL,
    PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spare_by_pack ON spare(pack);
CREATE TABLE IF NOT EXISTS damaged_packs (id BLOB PRIMARY KEY, reason TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checked (pack BLOB PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot_files (name TEXT PRIMARY KEY, size INTEGER NOT NULL,
    at INTEGER NOT NULL) WITHOUT ROWID;
"""


class IndexCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Opened by one at a time on this machine: two runs of a client opening a new cache
        # at once would meet 'database is locked' on the switch to WAL (which does not wait)
        # or drop each other's tables.
        with machine_lock(path.with_name(f".{path.name}.open.lock")):
            self._prepare()
        self._lock = threading.RLock()  # one connection, used by the uploader threads too

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-16000")  # 16 MB page cache, whatever the size
        # Checked and made in one transaction: a cache of another layout is started again.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("PRAGMA user_version").fetchone()[0] != CACHE_VERSION:
                # A cache of another layout: it is only a cache, start it again.
                for table in ("chunks", "packs", "index_files", "spare", "damaged_packs",
                              "checked", "snapshot_files"):
                    self._db.execute(f"DROP TABLE IF EXISTS {table}")
                self._db.execute(f"PRAGMA user_version = {CACHE_VERSION}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        """Record a pack. A chunk already known keeps its place (this one becomes a spare),
        unless ``moved`` (prune copied it into this pack and is about to delete the old one)."""
        rows = [(e.chunk_id, pack_id, e.offset, e.length, e.raw_length, e.flags, e.key_index)
                for e in entries]
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO packs VALUES (?, ?)", (pack_id, size))
            if moved:
                self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     rows)
                return
            self._db.executemany(
                "INSERT OR IGNORE INTO spare SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS "
                "(SELECT 1 FROM chunks WHERE id = ?1 AND pack != ?2)", rows)
            self._db.executemany("INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 rows)

    def remove_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Forget packs; a chunk they held that another pack holds too keeps that place."""
        with self._transaction():
            removed = 0
            for pack_id in pack_ids:
                self._db.execute("DELETE FROM chunks WHERE pack = ?", (pack_id,))
                self._db.execute("DELETE FROM spare WHERE pack = ?", (pack_id,))
                self._db.execute("DELETE FROM packs WHERE id = ?", (pack_id,))
                self._db.execute("DELETE FROM checked WHERE pack = ?", (pack_id,))
                removed += 1
            if removed and self._db.execute("SELECT 1 FROM spare LIMIT 1").fetchone():
                self._db.execute("INSERT OR IGNORE INTO chunks SELECT * FROM spare")
                self._db.execute("DELETE FROM spare WHERE EXISTS (SELECT 1 FROM chunks c "
                                 "WHERE c.id = spare.id AND c.pack = spare.pack)")

    def locations(self, chunk_id: bytes) -> list[tuple[bytes, PackEntry]]:
        """Every pack known to hold the chunk, its first place first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT pack, offset, length, raw_length, flags, key_index FROM chunks "
                "WHERE id = ?1 UNION ALL SELECT pack, offset, length, raw_length, flags, "
                "key_index FROM spare WHERE id = ?1", (chunk_id,)).fetchall()
        return [(bytes(r[0]), PackEntry(chunk_id, r[1], r[2], r[3], r[4], r[5])) for r in rows]

    def mark_damaged(self, pack_id: bytes, reason: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO damaged_packs VALUES (?, ?)",
                             (pack_id, reason))

    def forget_damaged(self, pack_id: bytes) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM damaged_packs WHERE id = ?", (pack_id,))

    def damaged(self) -> dict[bytes, str]:
        with self._lock:
            return {bytes(r[0]): r[1]
                    for r in self._db.execute("SELECT id, reason FROM damaged_packs")}

    def least_checked(self, limit: int) -> list[bytes]:
        """The packs read back longest ago (never first), for the rolling sample."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id FROM packs p LEFT JOIN checked c ON c.pack = p.id "
                "ORDER BY COALESCE(c.at, -1), p.id LIMIT ?", (limit,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def mark_checked(self, pack_ids: Iterable[bytes], at: int) -> None:
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO checked VALUES (?, ?)",
                                 ((p, at) for p in pack_ids))

    def packs(self) -> dict[bytes, int]:
        with self._lock:
            return {bytes(r[0]): r[1] for r in self._db.execute("SELECT id, size FROM packs")}

    def pack_entries(self, pack_id: bytes) -> list[PackEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, offset, length, raw_length, flags, key_index FROM chunks "
                "WHERE pack = ?1 UNION ALL SELECT id, offset, length, raw_length, flags, "
                "key_index FROM spare WHERE pack = ?1 ORDER BY 2", (pack_id,)).fetchall()
        return [PackEntry(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def snapshot_files(self) -> dict[str, tuple[int, int]]:
        """Snapshot files seen intact: name -> (size, when last read back)."""
        with self._lock:
            return {r[0]: (r[1], r[2]) for r in
                    self._db.execute("SELECT name, size, at FROM snapshot_files")}

    def mark_snapshot_files(self, rows: Iterable[tuple[str, int, int]]) -> None:
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO snapshot_files VALUES (?, ?, ?)", rows)

    def forget_snapshot_files(self, names: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM snapshot_files WHERE name = ?",
                                 ((n,) for n in names))

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
