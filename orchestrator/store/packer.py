"""New chunks -> packs on the baie: the pack pipeline of a backup.

A chunk the repository does not have is handed to a pool of threads that compress and encrypt
it (zstd and AES-GCM release the GIL) while the caller goes on reading. Encrypted chunks are
gathered, in the order they came, into packs of about ``pack_size`` bytes, each sealed with its
own random key, and a second pool uploads them. Every few packs an index file is written (a
checkpoint: an interrupted first upload resumes there, and packs uploaded after the last
checkpoint are adopted by the next run). Nothing here writes a snapshot: that is the backup's
commit point (store/backup.py).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.baie.target import size_of
from orchestrator.store import format as fmt
from orchestrator.store.keys import seal
from orchestrator.store.repository import Repository

PACK_SIZE = 32 * 1024 * 1024
INDEX_EVERY_PACKS = 8
INDEX_EVERY_S = 300.0
# Plaintext handed to the encrypting threads and not yet placed in a pack. Counted in bytes,
# not chunks: with 256 KiB content-defined chunks, six in flight kept the reader waiting on
# each one in turn (one core busy of two; 16 MiB: both).
# And in chunks, for small files: thousands of them in flight cost more than they gain.
IN_FLIGHT_BYTES = 16 * 1024 * 1024
IN_FLIGHT_CHUNKS = 64


@dataclass
class _OpenPack:
    """A pack being filled: its blobs are kept as they come and written one after the other
    (growing one buffer copied the whole pack again at every reallocation; joining them
    held the GIL for the time of a 32 MiB copy)."""

    generation: int
    key: bytes
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    entries: list[fmt.PackEntry] = field(default_factory=list)


class Packer:
    """Takes chunks from one backup, sends the new ones to the repository in packs.

    Not thread-safe: one reading thread calls :meth:`add`, then :meth:`flush`, then
    :meth:`close` (which must be called in every case: it stops the threads). ``on_pack`` is
    called, in the calling thread, with the size of each pack once it is uploaded and in the
    index cache.
    """

    def __init__(self, repo: Repository, *, level: int, pack_size: int, workers: int,
                 upload_workers: int, on_pack: Callable[[int], None]) -> None:
        self.repo = repo
        self.level = level
        self.pack_size = pack_size
        self._on_pack = on_pack
        self._encryptors = ThreadPoolExecutor(workers, thread_name_prefix="encrypt")
        self._uploaders = ThreadPoolExecutor(upload_workers, thread_name_prefix="upload")
        self._indexer = ThreadPoolExecutor(1, thread_name_prefix="index")
        self._checkpoints: list[Future[str]] = []
        self._max_uploads = upload_workers + 1
        self._in_flight_bytes = 0
        self._in_flight: deque[tuple[bytes, int, int, Future[tuple[bytes, bytes, int]]]] = \
            deque()
        self._uploads: deque[tuple[Future[tuple[bytes, int]], list[fmt.PackEntry]]] = deque()
        self._pending: set[bytes] = set()  # sent by this backup, not yet in the index cache
        # A chunk's pack is decided when it is handed out (its key encrypts it): a generation
        # is the chunks of one pack, about pack_size bytes of plaintext.
        self._generation = 0
        self._gen_bytes = 0
        self._gen_keys: dict[int, bytes] = {0: os.urandom(32)}
        self._open: _OpenPack | None = None
        self._unindexed: list[tuple[bytes, int, list[fmt.PackEntry]]] = []
        self._last_index = time.monotonic()

    def known(self, chunk_id: bytes) -> bool:
        """Whether the repository, or this backup, has the chunk already."""
        return chunk_id in self._pending or self.repo.cache.has(chunk_id)

    def add(self, chunk: bytes | memoryview, chunk_id: bytes, tree: bool = False) -> bool:
        """Send a chunk unless the repository (or this backup) has it already; True when it
        is sent. Waits while too much is in flight; raises a failed upload's error."""
        if self.known(chunk_id):
            return False
        self._pending.add(chunk_id)
        if self._gen_bytes >= self.pack_size:
            self._generation += 1
            self._gen_keys[self._generation] = os.urandom(32)
            self._gen_bytes = 0
        self._gen_bytes += len(chunk)
        future = self._encryptors.submit(fmt.encrypt_blob, self._gen_keys[self._generation],
                                         chunk_id, chunk, self.level, tree)
        self._in_flight.append((chunk_id, len(chunk), self._generation, future))
        self._in_flight_bytes += len(chunk)
        while (self._in_flight_bytes > IN_FLIGHT_BYTES
               or len(self._in_flight) > IN_FLIGHT_CHUNKS):
            self._place_oldest()
        return True

    def flush(self) -> None:
        """Every chunk added is in a pack on the baie and in an index file there, both durable
        (see ``Repository.write_index``). Raises the first upload or checkpoint that failed."""
        while self._in_flight:
            self._place_oldest()
        self._finish_pack()
        while self._uploads:
            self._reap_upload()
        self._checkpoint()
        for checkpoint in self._checkpoints:
            checkpoint.result()

    def close(self) -> None:
        """Stop the threads; what was not flushed is dropped (idempotent)."""
        self._encryptors.shutdown(wait=True, cancel_futures=True)
        self._uploaders.shutdown(wait=True, cancel_futures=True)
        self._indexer.shutdown(wait=True)

    def _place_oldest(self) -> None:
        chunk_id, raw_length, generation, future = self._in_flight.popleft()
        self._in_flight_bytes -= raw_length
        nonce, body, flags = future.result()
        if self._open is None or self._open.generation != generation:
            if self._open is not None:
                self._finish_pack()
            self._open = _OpenPack(generation, self._gen_keys[generation])
        pack = self._open
        length = len(nonce) + len(body)
        pack.entries.append(fmt.PackEntry(chunk_id, pack.size, length, raw_length, flags))
        pack.parts += (nonce, body)
        pack.size += length

    def _finish_pack(self) -> None:
        pack = self._open
        self._open = None
        if pack is None or not pack.entries:
            return
        del self._gen_keys[pack.generation]
        while len(self._uploads) >= self._max_uploads:
            self._reap_upload()
        future = self._uploaders.submit(self._seal_and_upload, pack)
        self._uploads.append((future, pack.entries))

    def _seal_and_upload(self, pack: _OpenPack) -> tuple[bytes, int]:
        """In an uploader thread: trailer, name (SHA-256 of the bytes), upload."""
        sealed = seal(pack.key, self.repo.recipients)
        pack.parts.append(fmt.pack_trailer(pack.entries, [sealed], self.repo.writer.index_key))
        parts, pack.parts = pack.parts, []
        digest = hashlib.sha256()
        for part in parts:  # each update lets go of the GIL; one join of 32 MiB would not
            digest.update(part)
        pack_id = digest.digest()
        self.repo.target.put(fmt.pack_name(pack_id), parts)
        return pack_id, size_of(parts)

    def _reap_upload(self) -> None:
        future, entries = self._uploads.popleft()
        # A failed upload stops the backup here, with the baie's error.
        pack_id, size = future.result()
        self.repo.cache.add_pack(pack_id, size, entries)
        self._pending.difference_update(e.chunk_id for e in entries)
        self._unindexed.append((pack_id, size, entries))
        self._on_pack(size)
        if (len(self._unindexed) >= INDEX_EVERY_PACKS
                or time.monotonic() - self._last_index > INDEX_EVERY_S):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Index what was uploaded, in the background (it waits for those packs to be on
        disk); an earlier checkpoint that failed stops the backup here."""
        for done in [f for f in self._checkpoints if f.done()]:
            done.result()
            self._checkpoints.remove(done)
        if self._unindexed:
            self._checkpoints.append(self._indexer.submit(self.repo.write_index,
                                                          self._unindexed))
            self._unindexed = []
        self._last_index = time.monotonic()
