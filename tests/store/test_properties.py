"""Property tests (hypothesis) on chunking and the repository format."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.chunker import cdc_chunks, fixed_chunks
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
    assert all(256 * 1024 <= len(c) <= 4 * 1024 * 1024 for c in chunks[:-1])


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
