"""Restoring files from a snapshot, with the client's (or escrow) private key.

Every chunk read back is decrypted (AES-GCM authenticates it) and its keyed id recomputed: a
restored file is exactly what was backed up, or the restore stops naming the damaged chunk,
pack and file. Files are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.errors import (
    BaieError,
    HvbError,
    RepositoryCorrupt,
    StoreError,
    TargetExists,
)
from orchestrator.store import format as fmt
from orchestrator.store.alloc import keep_buffers
from orchestrator.store.keys import PrivateKey, unseal
from orchestrator.store.repository import Repository, SnapshotInfo
from orchestrator.store.restoreout import OutputDir
from orchestrator.store.restorepath import UnsafeName, restore_parts

MAX_RANGE = 16 * 1024 * 1024
RECENT = 4  # requests kept for chunks needed again


@dataclass
class RestoreStats:
    files: int = 0
    bytes: int = 0
    refused: list[UnsafeName] = field(default_factory=list)  # not restored, with the reason
    overwritten: int = 0  # files that were already in ``to``
    partials_removed: int = 0  # left by an interrupted restore into ``to``


def local_relative(path: str) -> Path:
    """A host path (``D:\\Partages\\a.txt``, ``/srv/x``) as a relative path under the target;
    raises :class:`UnsafeName` for a name that could lead outside it."""
    return Path(*restore_parts(path))


class Restorer:
    def __init__(self, repo: Repository, key: PrivateKey, workers: int | None = None) -> None:
        keep_buffers()
        self.repo = repo
        self.key = key
        self.workers = workers or os.cpu_count() or 2
        self._pack_keys: dict[bytes, list[bytes]] = {}
        self._id_key = repo.writer.chunk_id_key

    def _pack_keys_of(self, pack_id: bytes, size: int) -> list[bytes]:
        keys = self._pack_keys.get(pack_id)
        if keys is None:
            _entries, sealed = self.repo.read_pack_header(pack_id, size)
            keys = self._pack_keys[pack_id] = [unseal(s, self.key) for s in sealed]
        return keys

    def _locate(self, ids: list[bytes], where: str) -> list[tuple[bytes, fmt.PackEntry]]:
        found = []
        for chunk_id in ids:
            hit = self.repo.cache.lookup(chunk_id)
            if hit is None:
                raise RepositoryCorrupt(f"{where}: chunk {chunk_id.hex()[:16]} is in no pack "
                                        "(the repository lost data; run hvbackup verify)")
            found.append(hit)
        return found

    def _ranges(self, located: list[tuple[bytes, fmt.PackEntry]]
                ) -> Iterator[tuple[bytes, int, int, list[fmt.PackEntry], int]]:
        """Consecutive chunks lying next to each other in a pack are read in one request;
        yields the request and the position of its first chunk in the file."""
        i = 0
        while i < len(located):
            pack_id, first = located[i]
            entries = [first]
            end = first.offset + first.length
            j = i + 1
            while j < len(located):
                next_pack, entry = located[j]
                if next_pack != pack_id or entry.offset != end or end - first.offset > MAX_RANGE:
                    break
                entries.append(entry)
                end += entry.length
                j += 1
            yield pack_id, first.offset, end - first.offset, entries, i
            i = j

    def _fetch(self, pack_id: bytes, offset: int, length: int, entries: list[fmt.PackEntry],
               sizes: dict[bytes, int], where: str) -> list[bytes]:
        """The plaintext of ``entries``, read in one request. When that fails (a pack missing,
        truncated or damaged on the baie), each chunk is read alone, then from the other packs
        that hold it; the first error is raised when no place gives it intact."""
        try:
            return self._read(pack_id, offset, length, entries, sizes, where)
        except (RepositoryCorrupt, BaieError) as exc:
            if isinstance(exc, BaieError) and not exc.permanent:
                raise  # the baie is unreachable: no other place would answer either
            return [self._elsewhere(pack_id, entry, sizes, where, exc, alone=len(entries) > 1)
                    for entry in entries]

    def _elsewhere(self, failed: bytes, entry: fmt.PackEntry, sizes: dict[bytes, int],
                   where: str, error: HvbError, *, alone: bool) -> bytes:
        places = [(failed, entry)] if alone else []
        places += [(p, e) for p, e in self.repo.cache.locations(entry.chunk_id) if p != failed]
        for pack_id, place in places:
            try:
                return self._read(pack_id, place.offset, place.length, [place], sizes,
                                  where)[0]
            except (RepositoryCorrupt, BaieError):
                continue
        if isinstance(error, RepositoryCorrupt) and where in error.message:
            raise error
        raise RepositoryCorrupt(f"{where}: chunk {entry.chunk_id.hex()[:16]} cannot be read "
                                f"({error.message})") from None

    def _read(self, pack_id: bytes, offset: int, length: int, entries: list[fmt.PackEntry],
              sizes: dict[bytes, int], where: str) -> list[bytes]:
        data = self.repo.target.get(fmt.pack_name(pack_id), offset, length)
        if len(data) != length:
            raise RepositoryCorrupt(f"{where}: pack {pack_id.hex()[:16]} is truncated")
        keys = self._pack_keys_of(pack_id, sizes[pack_id])
        view = memoryview(data)
        out = []
        for entry in entries:
            at = entry.offset - offset
            plain = fmt.decrypt_blob(keys[entry.key_index], entry, view[at:at + entry.length],
                                     f"pack {pack_id.hex()[:16]} ({where})")
            if fmt.chunk_id(plain, entry.flags, self._id_key) != entry.chunk_id:
                raise RepositoryCorrupt(f"{where}: chunk {entry.chunk_id.hex()[:16]} in pack "
                                        f"{pack_id.hex()[:16]} does not match its id")
            out.append(plain)
        return out

    def restore(self, info: SnapshotInfo, to: Path, *, only: str | None = None,
                progress: Callable[[RestoreStats], None] | None = None,
                overwrite: bool | Callable[[list[str]], bool] = False) -> RestoreStats:
        """Restore the snapshot's files (or those under ``only``) below ``to``.

        A name that would lead outside ``to`` (``..``, a drive-relative name, a device name, a
        link in ``to``) is not restored: it is listed in ``stats.refused`` and the others are.
        Files already in ``to`` are replaced when ``overwrite`` is true (or returns true for
        their list); otherwise :class:`TargetExists` is raised before anything is written."""
        header = self.repo.snapshot_header(info)
        tree = self.repo.snapshot_tree(info, self.key)
        ids = header.chunk_ids
        files: list[dict[str, Any]] = tree["files"]
        if only:
            prefix = only.replace("/", "\\") if "\\" in files[0]["path"] else only
            files = [f for f in files if f["path"] == prefix
                     or f["path"].startswith(prefix.rstrip("\\/") + ("\\" if "\\" in prefix
                                                                     else "/"))]
            if not files:
                raise StoreError(f"snapshot {info.id[:12]} holds nothing under {only!r}")
        sizes = self.repo.cache.packs()
        stats = RestoreStats()
        with OutputDir(to) as out, ThreadPoolExecutor(self.workers,
                                                      thread_name_prefix="restore") as pool:
            planned = _plan(out, files, stats, overwrite)
            stats.partials_removed = out.begin()
            try:
                for f, parts in planned:
                    chunk_ids = [bytes(ids[i * fmt.ID_SIZE:(i + 1) * fmt.ID_SIZE])
                                 for i in range(f["first"], f["first"] + f["count"])]
                    slices = fmt.decode_slices(f.get("slices"), f["path"])
                    try:
                        self._restore_file(pool, f["path"], chunk_ids, slices, out, parts,
                                           stats, sizes, progress)
                        out.commit(parts, f["mtime"])
                    except UnsafeName as exc:
                        stats.refused.append(UnsafeName(f["path"], exc.reason))
                        continue
                    stats.files += 1
            finally:
                out.end()
        return stats

    def _restore_file(self, pool: ThreadPoolExecutor, path: str, chunk_ids: list[bytes],
                      slices: dict[int, tuple[int, int]], output: OutputDir,
                      parts: tuple[str, ...], stats: RestoreStats, sizes: dict[bytes, int],
                      progress: Callable[[RestoreStats], None] | None) -> None:
        located = self._locate(chunk_ids, path)
        # (request, picks): what to write of each chunk the request returns, in file order.
        pending: deque[tuple[Future[list[bytes]], list[_Pick]]] = deque()
        # The last requests: a chunk needed again soon after (the empty areas of an image, the
        # old chunk around a block that changed) is taken from them, not read again.
        recent: deque[tuple[Future[list[bytes]], list[bytes]]] = deque(maxlen=RECENT)
        try:
            with output.open_partial(parts) as out:
                for pack_id, offset, length, entries, at in self._ranges(located):
                    picks = [self._pick(k, at + k, entry, slices, path)
                             for k, entry in enumerate(entries)]
                    future = None
                    if len(entries) == 1:
                        for earlier, ids in recent:
                            if entries[0].chunk_id in ids:
                                future = earlier
                                picks = [picks[0]._replace(item=ids.index(entries[0].chunk_id))]
                                break
                    if future is None:
                        future = pool.submit(self._fetch, pack_id, offset, length, entries,
                                             sizes, path)
                        recent.append((future, [e.chunk_id for e in entries]))
                    pending.append((future, picks))
                    while len(pending) > self.workers * 4:
                        self._write(out, *pending.popleft(), stats, progress)
                while pending:
                    self._write(out, *pending.popleft(), stats, progress)
        except BaseException:
            for future, _picks in pending:
                future.cancel()
            output.discard(parts)
            raise

    @staticmethod
    def _pick(k: int, position: int, entry: fmt.PackEntry, slices: dict[int, tuple[int, int]],
              path: str) -> _Pick:
        piece = slices.get(position)
        if piece is None:
            return _Pick(k, 0, None)
        offset, length = piece
        if offset + length > entry.raw_length:
            raise RepositoryCorrupt(f"{path}: piece {position} lies outside chunk "
                                    f"{entry.chunk_id.hex()[:16]} (damaged file list)")
        return _Pick(k, offset, length)

    @staticmethod
    def _write(out: Any, future: Future[list[bytes]], picks: list[_Pick], stats: RestoreStats,
               progress: Callable[[RestoreStats], None] | None) -> None:
        blocks = future.result()
        for pick in picks:
            block = blocks[pick.item]
            if pick.length is None:
                out.write(block)
                stats.bytes += len(block)
            else:
                out.write(memoryview(block)[pick.offset:pick.offset + pick.length])
                stats.bytes += pick.length
        if progress:
            progress(stats)


def _plan(out: OutputDir, files: list[dict[str, Any]], stats: RestoreStats,
          overwrite: bool | Callable[[list[str]], bool]
          ) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    """Each restorable file with its place under ``out``; refused names go to ``stats``.
    Raises :class:`TargetExists` when files are there and may not be overwritten."""
    planned: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    existing: list[str] = []
    for f in files:
        try:
            parts = restore_parts(f["path"])
            if out.exists(parts):
                existing.append(os.path.join(*parts))
        except UnsafeName as exc:
            stats.refused.append(UnsafeName(f["path"], exc.reason))
            continue
        planned.append((f, parts))
    if existing:
        allowed = overwrite(existing) if callable(overwrite) else overwrite
        if not allowed:
            shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
            raise TargetExists(f"{len(existing)} file(s) to restore already exist in {out.root} "
                               f"({shown}); give --overwrite to replace them, or restore into "
                               "an empty folder")
        stats.overwritten = len(existing)
    return planned


class _Pick(NamedTuple):
    """Which chunk of a request's answer, and which part of it (all of it: length None)."""

    item: int
    offset: int
    length: int | None
