"""One backup into a repository: files -> chunks -> packs -> index -> snapshot.

The calling thread reads and chunks each file and computes each chunk's keyed id (BLAKE3); a
chunk already in the repository costs only that hash. A disk image is read region by region
against its map, and only what changed is sent (store/imagedelta.py). New chunks go to the pack
pipeline (store/packer.py), which compresses, encrypts and uploads them while reading goes on
and writes an index checkpoint every few packs. The snapshot is written last: it is the commit
point. The sequence, as jobs/run.py runs it: a shared lock, ``repo.sync_index()``, the checks
of what the baie really holds (store/health.py), then :class:`Backup`,
:meth:`~Backup.add_path` for each file or folder, :meth:`~Backup.commit`
(:meth:`~Backup.close` instead on any failure); :func:`backup_paths` is that sequence.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import blake3

from orchestrator.baie.target import Target
from orchestrator.errors import SourceDenied
from orchestrator.mover.source import Source
from orchestrator.store import format as fmt
from orchestrator.store.alloc import keep_buffers
from orchestrator.store.chunker import DEFAULT_IMAGE_CHUNK, chunks_for, fixed_chunks, is_image
from orchestrator.store.health import Health, check
from orchestrator.store.imagedelta import ImageDelta
from orchestrator.store.imagemap import MapReader, MapWriter, Piece, Region, map_path
from orchestrator.store.keys import seal
from orchestrator.store.locks import Lock
from orchestrator.store.packer import PACK_SIZE, Packer
from orchestrator.store.repository import Repository, SnapshotInfo

log = logging.getLogger(__name__)

# How long a backup waits for a prune of its baie to finish deleting (prune, for its part,
# waits for running backups before it starts: store/prune.py).
PRUNE_WAIT = timedelta(minutes=30)


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
        # Files and folders the account may not read (their NTFS ACL refuses it), by their
        # recorded names: left out of the snapshot, named in the run (AVERTISSEMENT).
        self.denied: list[str] = []
        self._delta = ImageDelta(image_chunk, self._id_key)
        self._maps_dir = repo.cache.path.parent / "maps"
        self._new_maps: list[MapWriter] = []
        self._last_progress = 0.0
        self.health: Health | None = None  # what the checks before it found (backing_up)

    # -- reading --------------------------------------------------------------------------

    def add_path(self, source: Source, path: str, *, shown_as: str | None = None,
                 skip: Callable[[str], bool] | None = None) -> None:
        """A file, or every file under a folder. ``shown_as`` is the name recorded in place of
        ``path`` (a folder read through a shadow-copy link keeps its real name); ``skip``
        leaves out files whose recorded name it accepts (exclusion patterns). Inside a folder,
        a file or sub-folder the account may not read (SourceDenied) is added to ``denied``
        and the rest is read; any other error, or a refused ``path`` itself, raises."""
        info = source.stat(path)
        if not info.is_dir:
            self._add_file(source, path, info.size, info.mtime, shown_as=shown_as)
            return
        for entry in source.walk(path):
            shown = (shown_as + entry.path[len(path):]) if shown_as else entry.path
            if skip is not None and skip(shown):
                continue
            if entry.denied:
                self.denied.append(shown)
                continue
            try:
                self._add_file(source, entry.path, entry.size, entry.mtime, shown_as=shown)
            except SourceDenied:
                # Refused at open, before any byte: nothing of it is in the snapshot.
                self.denied.append(shown)

    def _add_file(self, source: Source, path: str, size: int, mtime: float, *,
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

    def _add_chunk(self, chunk: bytes) -> None:
        chunk_id = blake3.blake3(chunk, key=self._id_key).digest()
        self._ids += chunk_id
        self.stats.chunks += 1
        self.stats.bytes_read += len(chunk)
        self._store(chunk, chunk_id)
        self._report()

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
        """Read an image region by region against its map (see store/imagedelta.py)."""
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
        """Store what changed in one region; returns its new map record."""
        delta = self._delta.region(region, old, self._packer.known)
        for chunk_id, start, end in delta.new:
            self._store(region[start:end], chunk_id, tree=True)  # all of it: not a copy
        self.stats.bytes_read += len(region)
        self._emit(delta.record.pieces, first, slices)
        return delta.record

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
                                       self.repo.writer.index_key, sign=self.repo.writer.sign,
                                       repository_id=self.repo.id)
            name = f"snapshots/{fmt.sha256(data).hex()}"
            self.repo.target.flush()  # what the snapshot refers to is on disk first
            self.repo.target.put(name, data)
            self.repo.target.flush()
            self.repo.cache.mark_snapshot_files([(name, len(data), int(time.time()))])
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


@contextmanager
def backing_up(repo: Repository, holder: str, *, other: Target | None = None,
               wait: timedelta = PRUNE_WAIT, poll_s: float = 5.0,
               **options: Any) -> Iterator[Backup]:
    """The backup sequence, as every backup runs it (jobs/run.py, the tests, the benchmark):
    a shared lock on the repository held by ``holder`` (prune waits for it), the index brought
    up to date with the baie, the packs it names checked against the baie (missing or damaged
    ones dropped, or copied back from ``other``, the second copy, when it holds them intact:
    ``Backup.health`` says what was found), then a :class:`Backup` (``options`` go to it) for
    the body to fill and commit. When the body raises, the backup is dropped (nothing is
    committed; packs already sent are reused next time) and the error goes on up. A prune
    deleting on the baie (its exclusive lease) is waited for, up to ``wait``: its deleting
    phase lasts minutes, and failing at once would miss the night."""
    with Lock(repo.target, "shared", holder).acquire(wait=wait, poll_s=poll_s):
        repo.sync_index()
        health = check(repo, other=other)
        run = Backup(repo, **options)
        run.health = health
        try:
            yield run
        except BaseException:
            run.close()
            raise


def backup_paths(repo: Repository, source: Source, paths: Iterable[str], meta: dict[str, Any],
                 **options: Any) -> tuple[SnapshotInfo, BackupStats]:
    """Back up ``paths`` (files or folders) read through ``source`` into one snapshot, through
    :func:`backing_up` (for the tests, the benchmark and scripts). Returns the snapshot and the
    figures; raises what the backup raised (nothing is then committed)."""
    with backing_up(repo, f"backup {meta.get('job', '')}".strip(), **options) as run:
        for path in paths:
            run.add_path(source, path)
        info = run.commit(meta)
    log.info("snapshot %s: %s", info.id[:12], asdict(run.stats))
    return info, run.stats
