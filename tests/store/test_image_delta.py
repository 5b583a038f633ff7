"""The decision of what to send for one disk-image region, as a pure function: a region, its
record from the last backup, what the repository has. Every delta rebuilds the region exactly
from the chunks it names."""

from __future__ import annotations

import random

from orchestrator.store import format as fmt
from orchestrator.store.imagedelta import Delta, ImageDelta
from orchestrator.store.imagemap import Region

BLOCK = fmt.BLOCK
REGION = 8 * BLOCK
KEY = bytes(range(32))


class Repo:
    """The chunks stored so far, by id."""

    def __init__(self) -> None:
        self.chunks: dict[bytes, bytes] = {}

    def known(self, chunk_id: bytes) -> bool:
        return chunk_id in self.chunks

    def store(self, data: bytes, delta: Delta) -> None:
        for chunk_id, start, end in delta.new:
            self.chunks.setdefault(chunk_id, data[start:end])

    def rebuild(self, delta: Delta) -> bytes:
        return b"".join(self.chunks[p.chunk_id][p.offset:p.offset + p.length]
                        for p in delta.record.pieces)


def night(delta: ImageDelta, repo: Repo, data: bytes, old: Region | None) -> Delta:
    decided = delta.region(data, old, repo.known)
    repo.store(data, decided)
    assert repo.rebuild(decided) == data
    return decided


def rewrite(data: bytes, blocks: list[int], seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for b in blocks:
        out[b * BLOCK:(b + 1) * BLOCK] = rng.randbytes(BLOCK)
    return bytes(out)


def first_night() -> tuple[ImageDelta, Repo, bytes, Region]:
    delta, repo = ImageDelta(REGION, KEY), Repo()
    data = random.Random(1).randbytes(REGION)
    decided = night(delta, repo, data, None)
    return delta, repo, data, decided.record


def test_without_a_record_the_region_is_one_whole_chunk() -> None:
    delta, repo = ImageDelta(REGION, KEY), Repo()
    data = random.Random(1).randbytes(REGION)
    decided = night(delta, repo, data, None)
    (piece,) = decided.record.pieces
    assert piece.whole and decided.new == ((piece.chunk_id, 0, REGION),)
    assert piece.chunk_id == fmt.tree_id(fmt.block_digests(data, KEY), KEY)
    assert decided.record.blocks == 8


def test_an_unchanged_region_sends_nothing() -> None:
    delta, repo, data, record = first_night()
    decided = night(delta, repo, data, record)
    assert decided == Delta(record, ())


def test_an_unchanged_region_whose_chunk_was_pruned_is_sent_whole() -> None:
    delta, repo, data, record = first_night()
    repo.chunks.clear()
    decided = night(delta, repo, data, record)
    assert decided.new == ((record.pieces[0].chunk_id, 0, REGION),)


def test_one_changed_block_is_sent_alone_between_slices_of_the_old_chunk() -> None:
    delta, repo, data, record = first_night()
    decided = night(delta, repo, rewrite(data, [3], seed=2), record)
    ((_, start, end),) = decided.new
    assert (start, end) == (3 * BLOCK, 4 * BLOCK)
    old_id = record.pieces[0].chunk_id
    assert [(p.chunk_id == old_id, p.offset, p.length, p.whole)
            for p in decided.record.pieces] == [
        (True, 0, 3 * BLOCK, False), (False, 0, BLOCK, True), (True, 4 * BLOCK, 4 * BLOCK, False)]


def test_adjacent_changed_blocks_make_one_new_chunk() -> None:
    delta, repo, data, record = first_night()
    decided = night(delta, repo, rewrite(data, [5, 6], seed=3), record)
    assert [(s, e) for _, s, e in decided.new] == [(5 * BLOCK, 7 * BLOCK)]


def test_more_than_half_changed_is_sent_whole() -> None:
    delta, repo, data, record = first_night()
    decided = night(delta, repo, rewrite(data, [0, 1, 2, 3, 4], seed=4), record)
    assert len(decided.record.pieces) == 1 and decided.new[0][1:] == (0, REGION)


def test_pieces_from_more_than_four_chunks_are_sent_whole() -> None:
    delta, repo, data, record = first_night()
    three = night(delta, repo, rewrite(data, [1, 3, 5], seed=5), record)
    assert len(three.new) == 3  # the old chunk and three new ones: four sources
    four = night(delta, repo, rewrite(data, [0, 2, 4, 6], seed=6), record)
    assert len(four.new) == 1 and four.new[0][1:] == (0, REGION)  # five would be too many


def test_a_fragmented_region_changed_again_reuses_its_pieces() -> None:
    delta, repo, data, record = first_night()
    second_data = rewrite(data, [3], seed=7)
    second = night(delta, repo, second_data, record)
    third = night(delta, repo, rewrite(second_data, [6], seed=8), second.record)
    assert [(s, e) for _, s, e in third.new] == [(6 * BLOCK, 7 * BLOCK)]


def test_a_region_already_stored_elsewhere_is_referred_to_whole() -> None:
    delta, repo, _data, record = first_night()
    elsewhere = random.Random(9).randbytes(REGION)
    stored = night(delta, repo, elsewhere, None)  # another image, or another place in this one
    decided = night(delta, repo, elsewhere, record)
    assert decided.record.pieces == stored.record.pieces  # not fragmented against the old one


def test_empty_and_short_regions() -> None:
    delta, repo = ImageDelta(REGION, KEY), Repo()
    empty = night(delta, repo, bytes(REGION), None)
    assert empty.record.pieces[0].chunk_id == fmt.tree_id(
        fmt.block_digests(bytes(REGION), KEY), KEY)
    short = random.Random(10).randbytes(3 * BLOCK + 100)
    first = night(delta, repo, short, None)
    changed = short[:BLOCK] + bytes(BLOCK) + short[2 * BLOCK:]
    again = night(delta, repo, changed, first.record)
    assert again.new[0][1:] == (0, len(short))  # a short region is never cut in pieces
