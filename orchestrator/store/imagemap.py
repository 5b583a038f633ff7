"""What each region of a disk image was last time: the image map, a local cache per image.

A guest writes 4 to 64 KiB at a time, all over its disk. With 512 KiB image chunks, one such
write would send the whole chunk again; the map lets a backup send only the 64 KiB blocks that
changed. For every region (one image chunk) of the last backup of an image, the map holds:

- the region's hash (its keyed chunk id, 16 bytes);
- the keyed hash of each of its 64 KiB blocks (16 bytes of each block's digest; the region's
  id is computed from the same digests, see ``format.tree_id``);
- where its bytes are in the repository: pieces ``(chunk id, offset, length)``, usually one
  whole chunk; after a small change, slices of the old chunk around new small chunks.

What a backup sends for a region, given its record here, is decided in store/imagedelta.py:
nothing when it is unchanged, the runs of changed blocks when few changed, else the region
whole; a reused piece must still be in the repository's index (prune may have removed it).
The map is only a cache: without it a backup stores whole regions, as the first one does.
A map is written next to the index cache, to a temporary name, and replaces the old one only
when the snapshot that uses it is written. Each record carries a checksum; a damaged or
truncated map is read up to the damage and ignored beyond.

File: ``HVBMAP01``, u32 region size, then records::

    region hash (16) | u16 block count | block hashes (16 each) | u8 piece count |
    pieces: chunk id (32), u32 offset, u32 length, u8 whole | checksum (8, BLAKE3 of the above)
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from orchestrator.procs import pid_alive

log = logging.getLogger(__name__)

HASH = 16
MAGIC = b"HVBMAP01"
_HEAD = struct.Struct(">8sI")
_PIECE = struct.Struct(">32sIIB")
_CHECK = 8


@dataclass(frozen=True)
class Piece:
    """``length`` bytes at ``offset`` of the plaintext of chunk ``chunk_id``; ``whole`` when
    that is the entire chunk (restore then needs no slicing)."""

    chunk_id: bytes
    offset: int
    length: int
    whole: bool


@dataclass(frozen=True)
class Region:
    region_hash: bytes
    block_hashes: bytes  # HASH bytes per block
    pieces: tuple[Piece, ...]

    @property
    def blocks(self) -> int:
        return len(self.block_hashes) // HASH

    def block_hash(self, index: int) -> bytes:
        return self.block_hashes[index * HASH:(index + 1) * HASH]

    def encode(self) -> bytes:
        body = b"".join((
            self.region_hash, struct.pack(">H", self.blocks), self.block_hashes,
            bytes([len(self.pieces)]),
            *(_PIECE.pack(p.chunk_id, p.offset, p.length, p.whole) for p in self.pieces)))
        return body + blake3.blake3(body).digest(_CHECK)


def map_path(folder: Path, name: str, region_size: int, key: bytes) -> Path:
    """Where an image's map lives; named by a keyed hash, so file names stay out of the
    state folder as they stay out of the repository."""
    digest = blake3.blake3(name.encode(), key=key).hexdigest(16)
    return folder / f"{digest}-{region_size // 1024}k.map"


class MapReader:
    """The old map of an image, read region by region as the image is."""

    def __init__(self, path: Path, region_size: int) -> None:
        self._file: BinaryIO | None = None
        try:
            f = path.open("rb")
        except OSError:
            return
        try:
            head = f.read(_HEAD.size)
        except OSError:
            head = b""
        if len(head) == _HEAD.size and _HEAD.unpack(head) == (MAGIC, region_size):
            self._file = f
        else:
            f.close()

    def next(self) -> Region | None:
        """The next region's record, or None from the first missing or damaged one on."""
        f = self._file
        if f is None:
            return None
        try:
            start = f.read(HASH + 2)
            (blocks,) = struct.unpack(">H", start[HASH:])
            hashes = f.read(blocks * HASH)
            count_byte = f.read(1)
            pieces_raw = f.read(count_byte[0] * _PIECE.size)
            check = f.read(_CHECK)
            body = start + hashes + count_byte + pieces_raw
            if len(hashes) != blocks * HASH or blake3.blake3(body).digest(_CHECK) != check:
                raise ValueError("damaged record")
        except (struct.error, IndexError, ValueError, OSError):
            self.close()
            return None
        pieces = []
        for i in range(count_byte[0]):
            chunk_id, offset, length, whole = _PIECE.unpack_from(pieces_raw, i * _PIECE.size)
            pieces.append(Piece(chunk_id, offset, length, bool(whole)))
        return Region(start[:HASH], hashes, tuple(pieces))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MapWriter:
    """The new map, written as the image is read; :meth:`commit` puts it in place. A map
    that cannot be written (the state folder full or read-only) is given up with a warning:
    the backup goes on, the next one sends whole regions where the image changed."""

    def __init__(self, path: Path, region_size: int) -> None:
        self.path = path
        self._tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{id(self):x}")
        self._file: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(path)
            self._file = self._tmp.open("wb", buffering=1024 * 1024)
            self._file.write(_HEAD.pack(MAGIC, region_size))
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        log.warning("the image map %s cannot be written (%s): the next backup of this image "
                    "sends whole regions where it changed", self.path, exc)
        self.discard()

    def add(self, region: Region) -> None:
        if self._file is not None:
            try:
                self._file.write(region.encode())
            except OSError as exc:
                self._give_up(exc)

    def finish(self) -> None:
        """The image is read: close the file (it stays under its temporary name)."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                self._give_up(exc)

    def commit(self) -> None:
        """Put the map in place (after the snapshot that it describes was written)."""
        if self._file is None and not self._tmp.exists():
            return  # given up
        self.finish()
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._give_up(exc)

    def discard(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


def _remove_abandoned(path: Path) -> None:
    """Temporary maps left by backups that were killed (their process is gone)."""
    for tmp in path.parent.glob(f"{path.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0])
        except (ValueError, IndexError):
            continue  # not ours: leave it
        if not pid_alive(pid):
            tmp.unlink(missing_ok=True)
