"""Property tests (hypothesis) on chunking and the repository format."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyfastcdc.cy import FastCDC

from orchestrator.errors import RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.chunker import CDC_AVG, CDC_MAX, CDC_MIN, cdc_chunks, fixed_chunks
from orchestrator.store.keys import generate_private_key, seal, unseal


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3_000_000), st.sampled_from([65536, 256 * 1024, 512 * 1024]))
def test_fixed_chunks_cover_the_input_exactly(data: bytes, size: int) -> None:
    chunks = list(fixed_chunks(io.BytesIO(data), size))
    assert b"".join(chunks) == data
    assert all(len(c) == size for c in chunks[:-1])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 6_000_000), st.integers(0, 2**31 - 1))
def test_cdc_chunks_cover_the_input_within_bounds(size: int, seed: int) -> None:
    data = os.urandom(size)
    chunks = list(cdc_chunks(io.BytesIO(data), seed=seed))
    assert b"".join(chunks) == data
    assert all(CDC_MIN <= len(c) <= CDC_MAX for c in chunks[:-1])


class _Reads(io.RawIOBase):
    """A stream that answers reads the way real ones do: short reads of any length (network
    files), exactly what was asked, or at most SMB's 4 MiB per read. ``readinto`` is the only
    way in, as for the files the sources open; :class:`_ReadOnly` offers only ``read``."""

    def __init__(self, data: bytes, pattern: str, seed: int) -> None:
        self._data, self._at, self._pattern = memoryview(data), 0, pattern
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        room = len(buffer)
        if self._pattern == "short":
            room = min(room, self._rng.choice([1, 7, 4096, 65536, 1_000_003,
                                               self._rng.randrange(1, 9_000_000)]))
        elif self._pattern == "smb":
            room = min(room, 4 * 1024 * 1024)
        got = self._data[self._at:self._at + room]
        buffer[:len(got)] = got
        self._at += len(got)
        return len(got)


class _ReadOnly:
    def __init__(self, stream: _Reads) -> None:
        self._stream = stream

    def read(self, n: int) -> bytes:
        out = bytearray(n)
        got = self._stream.readinto(memoryview(out))
        return bytes(out[:got])


MIB = 1024 * 1024
# Sizes at and across every length the content-defined cutter cares about: its minimum and
# maximum chunk, its 16 MiB buffer and a few of them (the bug of issue 18 was past 16 MB).
_EDGES = [0, 1, 256 * 1024, 4 * MIB, 8 * MIB, 16 * MIB, 17 * MIB, 32 * MIB, 33 * MIB + 5]


def _content(size: int, seed: int) -> bytes:
    """Random bytes with long repeated stretches (they force maximum-length chunks)."""
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        part = rng.randbytes(rng.randrange(1, 3 * MIB)) if rng.random() < 0.6 else \
            b"page de donnees " * rng.randrange(1, 600_000)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(_EDGES), st.integers(-4097, 4097), st.sampled_from(["short", "exact",
       "smb", "read-only"]), st.integers(0, 2**31 - 1), st.sampled_from([None, 8 * MIB + 1]))
def test_cdc_chunks_of_streams_of_any_size_are_the_whole_content_cuts(
        edge: int, delta: int, pattern: str, seed: int, buffer_size: int | None) -> None:
    """However the stream reads, the chunks are those pyfastcdc finds over the whole content
    at once, and put back together they are the content, byte for byte."""
    size = max(0, edge + delta)
    data = _content(size, seed)
    reads = _Reads(data, "short" if pattern == "read-only" else pattern, seed)
    stream: Any = _ReadOnly(reads) if pattern == "read-only" else reads
    options = {} if buffer_size is None else {"buffer_size": buffer_size}
    chunks = list(cdc_chunks(stream, seed=seed % 1000, **options))
    assert b"".join(chunks) == data
    whole = FastCDC(avg_size=CDC_AVG - CDC_MIN, min_size=CDC_MIN, max_size=CDC_MAX,
                    seed=seed % 1000)
    expected = [c.length for c in whole.cut_buf(data)] if data else []
    assert [len(c) for c in chunks] == expected


def test_cdc_chunks_of_a_17_mb_file_on_disk(tmp_path: Path) -> None:
    """The case of issue 18: a 17 MB file read as the local source opens it (unbuffered)."""
    path = tmp_path / "COMPTA.bak"
    path.write_bytes(_content(17 * 1000 * 1000, 18))
    with path.open("rb", buffering=0) as f:
        chunks = list(cdc_chunks(f))
    assert b"".join(chunks) == path.read_bytes()
    assert len(chunks) > 4


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200_000), st.integers(0, 19), st.booleans())
def test_blobs_round_trip(plain: bytes, level: int, tree: bool) -> None:
    key, id_key = os.urandom(32), os.urandom(32)
    chunk_id = fmt.tree_id(fmt.block_digests(plain, id_key), id_key) if tree else \
        fmt.chunk_id(plain, fmt.FLAG_RAW, id_key)
    nonce, body, flags = fmt.encrypt_blob(key, chunk_id, plain, level, tree)
    blob = nonce + body
    entry = fmt.PackEntry(chunk_id, 0, len(blob), len(plain), flags)
    restored = fmt.decrypt_blob(key, entry, blob, "test")
    assert restored == plain
    assert fmt.chunk_id(restored, entry.flags, id_key) == chunk_id  # as restore checks it
    assert bool(flags & fmt.FLAG_TREE) == tree
    if level == 0:
        assert flags & fmt.FLAG_ZSTD == 0
    # An index entry whose flags are not the ones the blob was written with: damage, refused.
    for flip in (fmt.FLAG_TREE, fmt.FLAG_ZSTD):
        wrong = fmt.PackEntry(chunk_id, 0, len(blob), len(plain), flags ^ flip)
        with pytest.raises(RepositoryCorrupt, match="does not decrypt"):
            fmt.decrypt_blob(key, wrong, blob, "test")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**40),
                          st.integers(0, 2**31), st.integers(0, 2**31), st.sampled_from([0, 1])),
                max_size=50))
def test_pack_trailer_and_index_round_trip(rows: list[tuple[bytes, int, int, int, int]]) -> None:
    entries = [fmt.PackEntry(*row) for row in rows]
    index_key = os.urandom(32)
    reader = generate_private_key()
    sealed = [seal(os.urandom(32), [reader.public])]
    trailer = fmt.pack_trailer(entries, sealed, index_key)
    length = fmt.trailer_length(trailer[-16:], "p")
    assert length == len(trailer)
    parsed, sealed_back = fmt.parse_trailer(trailer, index_key, "p")
    assert parsed == entries and sealed_back == sealed
    blob = fmt.encode_index([(os.urandom(32), 123, entries)], index_key)
    [(_pack, size, decoded)] = list(fmt.decode_index(blob, index_key, "i"))
    assert size == 123 and decoded == entries


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(1, 3))
def test_sealing_opens_for_each_recipient_only(secret: bytes, count: int) -> None:
    keys = [generate_private_key() for _ in range(count)]
    blob = seal(secret, [k.public for k in keys])
    assert all(unseal(blob, k) == secret for k in keys)
    stranger = generate_private_key()
    try:
        unseal(blob, stranger)
    except Exception as exc:
        assert "another key" in str(exc)
    else:
        raise AssertionError("a stranger opened a sealed key")
