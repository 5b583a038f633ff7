"""What changed in one region of a disk image since its last backup, decided against its map.

The map (store/imagemap.py) holds, for each region of the image's last backup, the region's
hash, its 64 KiB blocks' hashes, and where its bytes are in the repository. For a region read
now, :meth:`ImageDelta.region` decides, without storing anything:

- unchanged (same hash, every piece still in the repository): the old pieces, nothing new;
- a few blocks changed (at most half, the pieces then coming from at most
  ``MAX_PIECE_SOURCES`` chunks, every reused one still in the repository): the unchanged
  blocks where they already are, each run of changed blocks as one new chunk;
- otherwise (no map, a short region, the same bytes already stored, too much changed, a piece
  gone): the region whole, as one chunk, which also undoes earlier fragmentation.

A region's chunk id is the tree id of its blocks' digests (``format.tree_id``), and so is that
of each run of changed blocks: the region is hashed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.store import format as fmt
from orchestrator.store.format import BLOCK
from orchestrator.store.imagemap import HASH, Piece, Region

# A changed region is sent block by block when at most half of its blocks changed and its
# pieces then come from at most this many chunks (restore reads each of them whole).
MAX_PIECE_SOURCES = 4


@dataclass(frozen=True)
class Delta:
    """One region, decided: ``record`` is its new map record, whose pieces are what the
    snapshot lists for it; ``new`` the chunks to store for it, ``(chunk id, start, end)``
    in the region's bytes, each a tree chunk (its id is a tree id)."""

    record: Region
    new: tuple[tuple[bytes, int, int], ...]


class ImageDelta:
    """Compares the regions of images with their maps, for one region size and one chunk-id
    key. Keeps nothing between regions but the id of an empty region."""

    def __init__(self, region_size: int, id_key: bytes) -> None:
        self.region_size = region_size
        self._id_key = id_key
        self._zero = bytes(region_size)
        self._zero_digests = fmt.block_digests(self._zero, id_key)
        self._zero_tree = fmt.tree_id(self._zero_digests, id_key)

    def region(self, data: bytes, old: Region | None, known: Callable[[bytes], bool]) -> Delta:
        """Decide for one region read now (``data``), given its map record from the last
        backup (None when there is none) and ``known``, which tells whether the repository
        (or this backup) has a chunk. A pure function of its arguments."""
        if len(data) == self.region_size and data[:1] == b"\0" and data == self._zero:
            digests, rid = self._zero_digests, self._zero_tree  # empty areas: no hashing
        else:
            digests = fmt.block_digests(data, self._id_key)
            rid = fmt.tree_id(digests, self._id_key)
        hashes = b"".join(d[:HASH] for d in digests)
        same = old is not None and old.region_hash == rid[:HASH]
        if old is not None and same and all(known(p.chunk_id) for p in old.pieces):
            return Delta(old, ())  # unchanged: where it already is
        if old is not None and not same and len(data) == self.region_size and not known(rid):
            refined = self._refine(digests, hashes, old, known)
            if refined is not None:
                pieces, new = refined
                return Delta(Region(rid[:HASH], hashes, pieces), new)
        return Delta(Region(rid[:HASH], hashes, (Piece(rid, 0, len(data), True),)),
                     ((rid, 0, len(data)),))

    def _refine(self, digests: list[bytes], hashes: bytes, old: Region,
                known: Callable[[bytes], bool]
                ) -> tuple[tuple[Piece, ...], tuple[tuple[bytes, int, int], ...]] | None:
        """The pieces of a changed region, and its new chunks: its unchanged blocks where they
        already are, each run of changed blocks as a new chunk. None when that is not worth it
        (or not possible: a piece of the old region left the repository)."""
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
                or not all(known(c) for c in reused):
            return None
        pieces = []
        new = []
        for start, end in plan:
            length = (end - start) * BLOCK
            if changed[start]:
                chunk_id = fmt.tree_id(digests[start:end], self._id_key)  # no hashing again
                new.append((chunk_id, start * BLOCK, end * BLOCK))
                pieces.append(Piece(chunk_id, 0, length, True))
            else:
                chunk_id, offset, chunk_length = where[start]
                pieces.append(Piece(chunk_id, offset, length,
                                    offset == 0 and chunk_length == length))
        return tuple(pieces), tuple(new)


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
