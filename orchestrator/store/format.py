"""The bytes of the repository: packs, index files and snapshot files (docs/repository-format.md).

Pure functions: they build and parse byte strings, they do no I/O.

Pack (``data/<2 hex>/<sha256 of the whole file>``)::

    blob*            nonce(12) || AES-256-GCM(pack key, flags(1) || payload, aad = chunk id)
    sealed pack key  the pack key sealed to the client (and escrow) public keys
    header           nonce(12) || AES-256-GCM(index key, entries, aad = "hvb-pack-header")
    u32 sealed length, u32 header length, "HVBPACK1"

Index file (``index/<sha256>``): nonce || AES-256-GCM(index key, zstd(packs and entries)).

Snapshot file (``snapshots/<sha256>``)::

    "HVBSNAP1", u32 length, header: nonce || AES-GCM(index key, zstd(u32 json length || json
        || chunk ids)), u32 length, sealed tree key, tree: nonce || AES-GCM(tree key, zstd(json))
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.errors import RepositoryCorrupt

PACK_MAGIC = b"HVBPACK1"
SNAP_MAGIC = b"HVBSNAP1"
INDEX_MAGIC = b"HVBIDX01"
FLAG_RAW, FLAG_ZSTD = 0, 1
ID_SIZE = 32
NONCE = 12
TAG = 16
BLOB_OVERHEAD = NONCE + 1 + TAG
_ENTRY = struct.Struct(">32sQIIB")  # chunk id, offset, blob length, plain length, flags
_TRAILER = struct.Struct(">II8s")
_PACK_REC = struct.Struct(">32sQI")  # pack id, pack size, entry count


@dataclass(frozen=True)
class PackEntry:
    chunk_id: bytes
    offset: int
    length: int  # bytes of the blob in the pack
    raw_length: int  # bytes of plaintext
    flags: int


def pack_name(pack_id: bytes) -> str:
    hexid = pack_id.hex()
    return f"data/{hexid[:2]}/{hexid}"


def sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _seal_aead(key: bytes, plain: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plain, aad)


def _open_aead(key: bytes, blob: bytes | memoryview, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(key).decrypt(bytes(blob[:NONCE]), bytes(blob[NONCE:]), aad)
    except InvalidTag:
        raise RepositoryCorrupt(f"{what} does not decrypt: damaged, or not written with this "
                                "key") from None


# -- blobs ----------------------------------------------------------------------------------

def encrypt_blob(pack_key: bytes, chunk_id: bytes, plain: bytes | memoryview,
                 level: int) -> tuple[bytes, int]:
    """Compress (when it helps) and encrypt one chunk; returns (blob, flags)."""
    flags, payload = FLAG_RAW, plain
    if level > 0:
        packed = zstandard.ZstdCompressor(level=level).compress(plain)
        if len(packed) < len(plain) - len(plain) // 32:  # keep raw unless it shrinks ~3 %
            flags, payload = FLAG_ZSTD, packed
    nonce = os.urandom(NONCE)
    body = AESGCM(pack_key).encrypt(nonce, bytes([flags]) + bytes(payload), chunk_id)
    return nonce + body, flags


def decrypt_blob(pack_key: bytes, entry: PackEntry, blob: bytes | memoryview, where: str) -> bytes:
    """The plaintext of a blob (not yet checked against its id: the caller does that)."""
    what = f"chunk {entry.chunk_id.hex()[:16]} in {where}"
    plain = _open_aead(pack_key, blob, entry.chunk_id, what)
    flags, payload = plain[0], plain[1:]
    if flags == FLAG_ZSTD:
        try:
            payload = zstandard.ZstdDecompressor().decompress(payload,
                                                              max_output_size=entry.raw_length)
        except zstandard.ZstdError as exc:
            raise RepositoryCorrupt(f"chunk {entry.chunk_id.hex()[:16]} in {where}: "
                                    f"decompression failed ({exc})") from None
    if len(payload) != entry.raw_length:
        raise RepositoryCorrupt(f"chunk {entry.chunk_id.hex()[:16]} in {where}: wrong length")
    return payload


# -- packs ----------------------------------------------------------------------------------

def pack_trailer(entries: list[PackEntry], sealed_key: bytes, index_key: bytes) -> bytes:
    body = b"".join(_ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length, e.flags)
                    for e in entries)
    header = _seal_aead(index_key, body, b"hvb-pack-header" + sealed_key)
    return sealed_key + header + _TRAILER.pack(len(sealed_key), len(header), PACK_MAGIC)


def trailer_length(tail: bytes, where: str) -> int:
    """From the last 16 bytes of a pack: how many bytes the whole trailer takes."""
    if len(tail) < _TRAILER.size:
        raise RepositoryCorrupt(f"{where} is too short to be a pack")
    sealed_len, header_len, magic = _TRAILER.unpack(tail[-_TRAILER.size:])
    if magic != PACK_MAGIC:
        raise RepositoryCorrupt(f"{where} is not a pack (bad magic)")
    return int(sealed_len + header_len + _TRAILER.size)


def parse_trailer(trailer: bytes, index_key: bytes, where: str) -> tuple[list[PackEntry], bytes]:
    """(entries, sealed pack key) from a pack's trailer (as sized by :func:`trailer_length`)."""
    sealed_len, header_len, _magic = _TRAILER.unpack(trailer[-_TRAILER.size:])
    sealed = trailer[:sealed_len]
    header = trailer[sealed_len:sealed_len + header_len]
    body = _open_aead(index_key, header, b"hvb-pack-header" + sealed, f"header of {where}")
    if len(body) % _ENTRY.size:
        raise RepositoryCorrupt(f"header of {where} has a bad length")
    entries = [PackEntry(*_ENTRY.unpack_from(body, i)) for i in range(0, len(body), _ENTRY.size)]
    return entries, sealed


# -- index files ----------------------------------------------------------------------------

def encode_index(packs: Iterable[tuple[bytes, int, list[PackEntry]]], index_key: bytes) -> bytes:
    out = bytearray(INDEX_MAGIC)
    for pack_id, size, entries in packs:
        out += _PACK_REC.pack(pack_id, size, len(entries))
        for e in entries:
            out += _ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length, e.flags)
    plain = zstandard.ZstdCompressor(level=3).compress(bytes(out))
    return _seal_aead(index_key, plain, b"hvb-index")


def decode_index(blob: bytes, index_key: bytes, where: str
                 ) -> Iterator[tuple[bytes, int, list[PackEntry]]]:
    plain = zstandard.ZstdDecompressor().decompress(
        _open_aead(index_key, blob, b"hvb-index", where), max_output_size=2**31)
    if plain[:8] != INDEX_MAGIC:
        raise RepositoryCorrupt(f"{where} is not an index file")
    pos = 8
    while pos < len(plain):
        pack_id, size, count = _PACK_REC.unpack_from(plain, pos)
        pos += _PACK_REC.size
        entries = [PackEntry(*_ENTRY.unpack_from(plain, pos + i * _ENTRY.size))
                   for i in range(count)]
        pos += count * _ENTRY.size
        yield pack_id, size, entries


# -- snapshots ------------------------------------------------------------------------------

@dataclass
class SnapshotHeader:
    """What the orchestrator may read of a snapshot (no file names, no data)."""

    meta: dict[str, Any]
    chunk_ids: bytes  # 32 bytes per chunk, in file order

    def ids(self) -> Iterator[bytes]:
        for i in range(0, len(self.chunk_ids), ID_SIZE):
            yield self.chunk_ids[i:i + ID_SIZE]


def encode_snapshot(header: SnapshotHeader, tree: dict[str, Any], sealed_tree_key: bytes,
                    tree_key: bytes, index_key: bytes) -> bytes:
    meta = json.dumps(header.meta, sort_keys=True).encode()
    head_plain = struct.pack(">I", len(meta)) + meta + header.chunk_ids
    head = _seal_aead(index_key, zstandard.ZstdCompressor(level=3).compress(head_plain),
                      b"hvb-snap-header")
    tree_plain = zstandard.ZstdCompressor(level=3).compress(
        json.dumps(tree, separators=(",", ":")).encode())
    tree_ct = _seal_aead(tree_key, tree_plain, b"hvb-snap-tree" + sha256(head))
    return (SNAP_MAGIC + struct.pack(">I", len(head)) + head
            + struct.pack(">I", len(sealed_tree_key)) + sealed_tree_key + tree_ct)


def _split_snapshot(data: bytes, where: str) -> tuple[bytes, bytes, bytes]:
    if data[:8] != SNAP_MAGIC:
        raise RepositoryCorrupt(f"{where} is not a snapshot file")
    try:
        (head_len,) = struct.unpack_from(">I", data, 8)
        head = data[12:12 + head_len]
        (sealed_len,) = struct.unpack_from(">I", data, 12 + head_len)
        sealed = data[16 + head_len:16 + head_len + sealed_len]
        tree = data[16 + head_len + sealed_len:]
    except struct.error:
        raise RepositoryCorrupt(f"{where} is truncated") from None
    return head, sealed, tree


def decode_snapshot_header(data: bytes, index_key: bytes, where: str) -> SnapshotHeader:
    head, _sealed, _tree = _split_snapshot(data, where)
    plain = zstandard.ZstdDecompressor().decompress(
        _open_aead(index_key, head, b"hvb-snap-header", where), max_output_size=2**34)
    (meta_len,) = struct.unpack_from(">I", plain, 0)
    meta = json.loads(plain[4:4 + meta_len])
    return SnapshotHeader(meta, bytes(plain[4 + meta_len:]))


def snapshot_sealed_key(data: bytes, where: str) -> bytes:
    return _split_snapshot(data, where)[1]


def decode_snapshot_tree(data: bytes, tree_key: bytes, where: str) -> dict[str, Any]:
    head, _sealed, tree = _split_snapshot(data, where)
    plain = _open_aead(tree_key, tree, b"hvb-snap-tree" + sha256(head), f"file list of {where}")
    decoded: dict[str, Any] = json.loads(zstandard.ZstdDecompressor().decompress(
        plain, max_output_size=2**32))
    return decoded
