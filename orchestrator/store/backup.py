"""One backup into a repository: files -> chunks -> packs -> index -> snapshot.

The calling thread reads and chunks each file and computes each chunk's keyed id (BLAKE3); a
chunk already in the repository costs only that hash. New chunks go to the pack pipeline
(store/packer.py), which compresses, encrypts and uploads them while reading goes on and
writes an index checkpoint every few packs. The snapshot is written last: it is the commit
point.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3

from orchestrator.mover.source import Source
from orchestrator.store import format as fmt
from orchestrator.store.alloc import keep_buffers
from orchestrator.store.chunker import DEFAULT_IMAGE_CHUNK, chunks_for, fixed_chunks, is_image
from orchestrator.store.format import BLOCK
from orchestrator.store.imagemap import HASH, MapReader, MapWriter, Piece, Region, map_path
from orchestrator.store.keys import seal
from orchestrator.store.packer import PACK_SIZE, Packer
from orchestrator.store.repository import Repository, SnapshotInfo

log = logging.getLogger(__name__)

# A changed image region is sent block by block when at most half of its blocks changed and its
# pieces then come from at most this many chunks (restore reads each of them whole).
MAX_PIECE_SOURCES = 4


@dataclass
class BackupStats:
    files: int = 0
    bytes_read: int = 0
    bytes_new: int = 0  # plaintext bytes of chunks the repository did not have
    bytes_stored: int = 0  # bytes of the packs written (what crossed to the baie)
    chunks: int = 0
    chunks_new: int = 0
    packs: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class Backup:
    """Collects files into one snapshot. Use :meth:`add_path` then :meth:`commit`; on any
    error the snapshot is simply not written (packs already sent are reused next time)."""

    def __init__(
        self,
        repo: Repository,
        *,
        compression_level: int = 3,
        image_chunk: int = DEFAULT_IMAGE_CHUNK,
        pack_size: int = PACK_SIZE,
        workers: int | None = None,
        upload_workers: int = 2,
        progress: Callable[[BackupStats], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        keep_buffers()
        self.repo = repo
        self.level = compression_level
        self.image_chunk = image_chunk
        self.pack_size = pack_size
        self.workers = workers or os.cpu_count() or 2
        self.stats = BackupStats()
        self._progress = progress
        self._now = now
        self._id_key = repo.writer.chunk_id_key
        self._seed = repo.cdc_seed
        self._cdc = repo.cdc_sizes
        self._packer = Packer(repo, level=compression_level, pack_size=pack_size,
                              workers=self.workers, upload_workers=upload_workers,
                              on_pack=self._packed)
        self._ids = bytearray()
        self._files: list[dict[str, Any]] = []
        self._zero_chunk = bytes(image_chunk)
        self._zero_digests = fmt.block_digests(self._zero_chunk, self._id_key)
        self._zero_tree = fmt.tree_id(self._zero_digests, self._id_key)
        self._maps_dir = repo.cache.path.parent / "maps"
        self._new_maps: list[MapWriter] = []
        self._last_progress = 0.0

    # -- reading --------------------------------------------------------------------------

    def add_path(self, source: Source, path: str, *, shown_as: str | None = None,
                 skip: Callable[[str], bool] | None = None) -> None:
        """A file, or every file under a folder. ``shown_as`` is the name recorded in place of
        ``path`` (a folder read through a shadow-copy link keeps its real name); ``skip``
        leaves out files whose recorded name it accepts (exclusion patterns)."""
        info = source.stat(path)
        if not info.is_dir:
            self.add_file(source, path, info.size, info.mtime, shown_as=shown_as)
            return
        for entry in source.walk(path):
            shown = (shown_as + entry.path[len(path):]) if shown_as else entry.path
            if skip is None or not skip(shown):
                self.add_file(source, entry.path, entry.size, entry.mtime, shown_as=shown)

    def add_file(self, source: Source, path: str, size: int, mtime: float, *,
                 shown_as: str | None = None) -> None:
        first = len(self._ids) // fmt.ID_SIZE
        name = shown_as or path
        slices: list[tuple[int, int, int]] = []
        read = 0
        with source.open(path) as stream:
            if is_image(path):
                read = self._add_image(stream, f"{source.label}\n{name}", first, slices)
            else:
                for chunk in chunks_for(path, stream, self.image_chunk, self._seed,
                                        self._cdc):
                    self._add_chunk(chunk)
                    read += len(chunk)
        entry: dict[str, Any] = {
            "path": name, "type": "file", "size": read, "mtime": mtime, "first": first,
            "count": len(self._ids) // fmt.ID_SIZE - first,
            "chunking": "fixed" if is_image(path) else "cdc"}
        if slices:
            entry["slices"] = fmt.encode_slices(slices)
        self._files.append(entry)
        self.stats.files += 1
        if read != size:
            log.info("%s changed size while read (%d -> %d bytes)", path, size, read)

    def _add_chunk(self, chunk: bytes, chunk_id: bytes | None = None, tree: bool = False
                   ) -> None:
        chunk_id = chunk_id or blake3.blake3(chunk, key=self._id_key).digest()
        self._ids += chunk_id
        self.stats.chunks += 1
        self.stats.bytes_read += len(chunk)
        self._store(chunk, chunk_id, tree)
        self._report()

    def _known(self, chunk_id: bytes) -> bool:
        return self._packer.known(chunk_id)

    def _store(self, chunk: bytes | memoryview, chunk_id: bytes, tree: bool = False) -> None:
        if self._packer.add(chunk, chunk_id, tree):
            self.stats.chunks_new += 1
            self.stats.bytes_new += len(chunk)

    def _packed(self, size: int) -> None:
        self.stats.packs += 1
        self.stats.bytes_stored += size

    # -- disk images: only the blocks that changed ------------------------------------------

    def _add_image(self, stream: Any, name: str, first: int,
                   slices: list[tuple[int, int, int]]) -> int:
        """Read an image region by region against its map (see store/imagemap.py)."""
        path = map_path(self._maps_dir, name, self.image_chunk, self._id_key)
        old = MapReader(path, self.image_chunk)
        new = MapWriter(path, self.image_chunk)
        self._new_maps.append(new)
        read = 0
        try:
            for region in fixed_chunks(stream, self.image_chunk):
                new.add(self._add_region(region, old.next(), first, slices))
                read += len(region)
            new.finish()
        finally:
            old.close()
        return read

    def _add_region(self, region: bytes, old: Region | None, first: int,
                    slices: list[tuple[int, int, int]]) -> Region:
        """Store one region; returns its map record. Its id is the tree id of its blocks'
        digests, which the map keeps too: the region is hashed once."""
        if len(region) == self.image_chunk and region[:1] == b"\0" \
                and region == self._zero_chunk:
            digests, rid = self._zero_digests, self._zero_tree  # empty areas: no hashing
        else:
            digests = fmt.block_digests(region, self._id_key)
            rid = fmt.tree_id(digests, self._id_key)
        hashes = b"".join(d[:HASH] for d in digests)
        same = old is not None and old.region_hash == rid[:HASH]
        if old is not None and same and all(self._known(p.chunk_id) for p in old.pieces):
            self.stats.bytes_read += len(region)
            self._emit(old.pieces, first, slices)  # unchanged: where it already is
            return old
        if old is not None and not same and len(region) == self.image_chunk \
                and not self._known(rid):
            pieces = self._refine(region, digests, hashes, old)
            if pieces is not None:
                self.stats.bytes_read += len(region)
                self._emit(pieces, first, slices)
                return Region(rid[:HASH], hashes, pieces)
        self._add_chunk(region, rid, tree=True)
        return Region(rid[:HASH], hashes, (Piece(rid, 0, len(region), True),))

    def _refine(self, region: bytes, digests: list[bytes], hashes: bytes, old: Region
                ) -> tuple[Piece, ...] | None:
        """The pieces of a changed region: its unchanged blocks where they already are, each
        run of changed blocks as a new chunk. None when that is not worth it (or not possible:
        a piece of the old region left the repository)."""
        count = len(digests)
        if old.blocks != count:
            return None
        changed = [hashes[j * HASH:(j + 1) * HASH] != old.block_hash(j) for j in range(count)]
        if sum(changed) * 2 > count:
            return None
        where = _block_places(old.pieces, count)  # (chunk id, offset, chunk length | None)
        if where is None:
            return None
        plan: list[tuple[int, int]] = []  # runs of blocks: (start, end), changed or not
        for j in range(count):
            if plan and changed[j] == changed[plan[-1][0]] and (
                    changed[j] or _follows(where[plan[-1][1] - 1], where[j])):
                plan[-1] = (plan[-1][0], j + 1)
            else:
                plan.append((j, j + 1))
        reused = {where[start][0] for start, _end in plan if not changed[start]}
        if len(reused) + sum(changed[start] for start, _end in plan) > MAX_PIECE_SOURCES \
                or not all(self._known(c) for c in reused):
            return None
        pieces = []
        for start, end in plan:
            length = (end - start) * BLOCK
            if changed[start]:
                chunk_id = fmt.tree_id(digests[start:end], self._id_key)  # no hashing again
                self._store(region[start * BLOCK:end * BLOCK], chunk_id, tree=True)
                pieces.append(Piece(chunk_id, 0, length, True))
            else:
                chunk_id, offset, chunk_length = where[start]
                pieces.append(Piece(chunk_id, offset, length,
                                    offset == 0 and chunk_length == length))
        return tuple(pieces)

    def _emit(self, pieces: tuple[Piece, ...], first: int,
              slices: list[tuple[int, int, int]]) -> None:
        for piece in pieces:
            if not piece.whole:
                slices.append((len(self._ids) // fmt.ID_SIZE - first, piece.offset,
                               piece.length))
            self._ids += piece.chunk_id
            self.stats.chunks += 1
        self._report()

    def _report(self, force: bool = False) -> None:
        if self._progress and (force or time.monotonic() - self._last_progress > 0.5):
            self._last_progress = time.monotonic()
            self._progress(self.stats)

    # -- the end --------------------------------------------------------------------------

    def commit(self, meta: dict[str, Any]) -> SnapshotInfo:
        """Flush everything and write the snapshot (the commit point); returns it."""
        try:
            self._packer.flush()
            full_meta = {
                "version": 1, "time": self._now().isoformat(), "hostname": socket.gethostname(),
                **meta, "files": self.stats.files, "bytes": self.stats.bytes_read,
                "chunks": self.stats.chunks, "bytes_new": self.stats.bytes_new,
                "bytes_stored": self.stats.bytes_stored, "image_chunk": self.image_chunk,
            }
            header = fmt.SnapshotHeader(full_meta, self._ids)  # encrypted in place, no copy
            tree_key = os.urandom(32)
            data = fmt.encode_snapshot(header, {"files": self._files}, seal(tree_key,
                                       self.repo.recipients), tree_key,
                                       self.repo.writer.index_key)
            name = f"snapshots/{fmt.sha256(data).hex()}"
            self.repo.target.flush()  # what the snapshot refers to is on disk first
            self.repo.target.put(name, data)
            self.repo.target.flush()
            for image_map in self._new_maps:
                image_map.commit()  # the next backup compares with what this one stored
            self._new_maps = []
            self.stats.bytes_stored += len(data)
            self._report(force=True)
            return SnapshotInfo(name, full_meta)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads (after commit, or to abandon the backup)."""
        self._packer.close()
        for image_map in self._new_maps:
            image_map.discard()  # the old map still describes what is stored
        self._new_maps = []


def backup_paths(repo: Repository, source: Source, paths: Iterable[str], meta: dict[str, Any],
                 **options: Any) -> tuple[SnapshotInfo, BackupStats]:
    """Back up ``paths`` (files or folders) read through ``source`` into one snapshot, under
    a shared lock. Returns the snapshot and the figures."""
    from orchestrator.store.locks import Lock

    with Lock(repo.target, "shared", f"backup {meta.get('job', '')}".strip()).acquire():
        repo.sync_index()
        run = Backup(repo, **options)
        try:
            for path in paths:
                run.add_path(source, path)
        except BaseException:
            run.close()
            raise
        info = run.commit(meta)
    log.info("snapshot %s: %s", info.id[:12], asdict(run.stats))
    return info, run.stats


def _block_places(pieces: tuple[Piece, ...], count: int
                  ) -> list[tuple[bytes, int, int | None]] | None:
    """For each 64 KiB block of a region, the chunk and offset holding it (and that chunk's
    length when known); None when the pieces do not cut the region at block boundaries."""
    places: list[tuple[bytes, int, int | None]] = []
    for piece in pieces:
        if piece.length % BLOCK:
            return None
        known = piece.length if piece.whole else None
        places += [(piece.chunk_id, piece.offset + k * BLOCK, known)
                   for k in range(piece.length // BLOCK)]
    return places if len(places) == count else None


def _follows(before: tuple[bytes, int, int | None], after: tuple[bytes, int, int | None]) -> bool:
    return before[0] == after[0] and before[1] + BLOCK == after[1]
