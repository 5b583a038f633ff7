"""The bytes of the repository: packs, index files and snapshot files (docs/repository-format.md).

Pure functions: they build and parse byte strings, they do no I/O.

Pack (``data/<2 hex>/<sha256 of the whole file>``)::

    blob*            nonce(12) || AES-256-GCM(pack key, payload, aad = chunk id || flags(1))
    sealed pack key  the pack key sealed to the client (and escrow) public keys
    header           nonce(12) || AES-256-GCM(index key, entries, aad = "hvb-pack-header")
    u32 sealed length, u32 header length, "HVBPACK1"

Index file (``index/<sha256>``): nonce || AES-256-GCM(index key, zstd(packs and entries)).

Snapshot file (``snapshots/<sha256>``), version 2::

    "HVBSNAP2"
    u32 length, meta: nonce || AES-GCM(index key, zstd(json))          figures, job, time
    u32 count, then count x (u32 length, nonce || AES-GCM(index key,    the chunk ids, in
        up to 2^20 chunk ids))                                          segments
    u32 length, sealed tree key
    u32 length, tree: nonce || AES-GCM(tree key, zstd(json))            file names and ranges
    Ed25519 signature (64) of the repository id and the SHA-256 of all the above

Version 1 ("HVBSNAP1", before December 2026): no tree length, no signature, other AADs; read
and restored, never authenticated. Both are parsed strictly (a padded part is refused).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.errors import RepositoryCorrupt

PACK_MAGIC = b"HVBPACK1"
SNAP_MAGIC = b"HVBSNAP1"
INDEX_MAGIC = b"HVBIDX01"
FLAG_RAW, FLAG_ZSTD = 0, 1
FLAG_TREE = 2  # the chunk's id is the tree id of its 64 KiB blocks (disk image regions)
BLOCK = 64 * 1024
ID_SIZE = 32
NONCE = 12
TAG = 16
BLOB_OVERHEAD = NONCE + TAG
# chunk id, offset, blob length, plain length, flags, which of the pack's sealed keys
_ENTRY = struct.Struct(">32sQIIBH")
_TRAILER = struct.Struct(">II8s")
_PACK_REC = struct.Struct(">32sQI")  # pack id, pack size, entry count


@dataclass(frozen=True)
class PackEntry:
    chunk_id: bytes
    offset: int
    length: int  # bytes of the blob in the pack
    raw_length: int  # bytes of plaintext
    flags: int
    key_index: int = 0  # packs rewritten by prune hold several sealed keys


def _pack_entry(e: PackEntry) -> bytes:
    return _ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length, e.flags, e.key_index)


def pack_name(pack_id: bytes) -> str:
    hexid = pack_id.hex()
    return f"data/{hexid[:2]}/{hexid}"


def sha256(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _seal_aead(key: bytes, plain: bytes | memoryview, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plain, aad)


def _open_aead(key: bytes, blob: bytes | memoryview, aad: bytes, what: str) -> bytes:
    if len(blob) < NONCE + TAG:  # empty or cut short: damage, not a programming error
        raise RepositoryCorrupt(f"{what} is truncated")
    try:
        view = memoryview(blob)  # no copy of the ciphertext before it is decrypted
        return AESGCM(key).decrypt(view[:NONCE], view[NONCE:], aad)
    except InvalidTag:
        raise RepositoryCorrupt(f"{what} does not decrypt: damaged, or not written with this "
                                "key") from None


# -- blobs ----------------------------------------------------------------------------------

_local = threading.local()
_PROBE = 4 * 1024
_PROBES = 8


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level: building one costs more than a small chunk."""
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def looks_incompressible(plain: bytes | memoryview) -> bool:
    """Already compressed or encrypted data (random-looking): samples spread over the chunk
    (disk chunks mix blocks of every kind) all fail to shrink at the fastest level."""
    if len(plain) < _PROBES * _PROBE * 4:
        return False
    step = len(plain) // _PROBES
    fast = _compressor(1)
    return all(len(fast.compress(plain[i * step:i * step + _PROBE])) > _PROBE * 0.97
               for i in range(_PROBES))


def block_digests(data: bytes | memoryview, key: bytes) -> list[bytes]:
    """The keyed BLAKE3 of each 64 KiB block of ``data`` (the last may be shorter)."""
    view = memoryview(data)
    return [blake3.blake3(view[i:i + BLOCK], key=key).digest()
            for i in range(0, len(view), BLOCK)]


def tree_id(digests: list[bytes], key: bytes) -> bytes:
    """The id of a chunk made of 64 KiB blocks, from the blocks' digests: the digests serve
    twice, for the id and for the image map, so an image's bytes are hashed once."""
    return blake3.blake3(b"".join((b"hvb-blocks", *digests)), key=key).digest()


def chunk_id(plain: bytes | memoryview, flags: int, key: bytes) -> bytes:
    """A chunk's id as its blob's flags say it was computed."""
    if flags & FLAG_TREE:
        return tree_id(block_digests(plain, key), key)
    return blake3.blake3(plain, key=key).digest()


def encrypt_blob(pack_key: bytes, chunk_id: bytes, plain: bytes | memoryview,
                 level: int, tree: bool = False) -> tuple[bytes, bytes, int]:
    """Compress (when it helps) and encrypt one chunk; returns (nonce, ciphertext, flags):
    the blob is the nonce then the ciphertext, kept apart so that neither is copied again
    before the pack is written. ``tree``: the id is a :func:`tree_id`. The flags are
    authenticated with the chunk id (AAD) and recorded in the chunk's pack entry."""
    flags, payload = FLAG_RAW, plain
    if level > 0 and not looks_incompressible(plain):
        packed = _compressor(level).compress(plain)
        if len(packed) < len(plain) - len(plain) // 32:  # keep raw unless it shrinks ~3 %
            flags, payload = FLAG_ZSTD, packed
    if tree:
        flags |= FLAG_TREE
    nonce = os.urandom(NONCE)
    # One cipher object per pack key and thread: half a megabyte a chunk, copies showed.
    return nonce, _aead(pack_key).encrypt(nonce, payload, chunk_id + _FLAG_BYTES[flags]), flags


_FLAG_BYTES = {flag: bytes([flag]) for flag in range(256)}


def _aead(key: bytes) -> AESGCM:
    cached: tuple[bytes, AESGCM] | None = getattr(_local, "aead", None)
    if cached is None or cached[0] != key:
        cached = _local.aead = (key, AESGCM(key))
    return cached[1]


def decrypt_blob(pack_key: bytes, entry: PackEntry, blob: bytes | memoryview, where: str) -> bytes:
    """The plaintext of a blob (not yet checked against its id: the caller does that). Flags
    that differ from the ones it was written with fail authentication like any damage."""
    what = f"chunk {entry.chunk_id.hex()[:16]} in {where}"
    payload = _open_aead(pack_key, blob, entry.chunk_id + _FLAG_BYTES[entry.flags], what)
    if entry.flags & FLAG_ZSTD:
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

def pack_trailer(entries: list[PackEntry], sealed_keys: list[bytes], index_key: bytes) -> bytes:
    """Sealed keys (one per pack written by a backup; several after prune rewrote a pack),
    then the encrypted entries, then lengths and magic."""
    section = struct.pack(">H", len(sealed_keys)) + b"".join(
        struct.pack(">I", len(k)) + k for k in sealed_keys)
    body = b"".join(_pack_entry(e) for e in entries)
    header = _seal_aead(index_key, body, b"hvb-pack-header" + sha256(section))
    return section + header + _TRAILER.pack(len(section), len(header), PACK_MAGIC)


def trailer_length(tail: bytes, where: str) -> int:
    """From the last 16 bytes of a pack: how many bytes the whole trailer takes."""
    if len(tail) < _TRAILER.size:
        raise RepositoryCorrupt(f"{where} is too short to be a pack")
    sealed_len, header_len, magic = _TRAILER.unpack(tail[-_TRAILER.size:])
    if magic != PACK_MAGIC:
        raise RepositoryCorrupt(f"{where} is not a pack (bad magic)")
    return int(sealed_len + header_len + _TRAILER.size)


def parse_trailer(trailer: bytes, index_key: bytes, where: str
                  ) -> tuple[list[PackEntry], list[bytes]]:
    """(entries, sealed keys) from a pack's trailer (as sized by :func:`trailer_length`)."""
    section_len, header_len, _magic = _TRAILER.unpack(trailer[-_TRAILER.size:])
    section = trailer[:section_len]
    header = trailer[section_len:section_len + header_len]
    body = _open_aead(index_key, header, b"hvb-pack-header" + sha256(section),
                      f"header of {where}")
    if len(body) % _ENTRY.size:
        raise RepositoryCorrupt(f"header of {where} has a bad length")
    entries = [PackEntry(*_ENTRY.unpack_from(body, i)) for i in range(0, len(body), _ENTRY.size)]
    try:
        (count,) = struct.unpack_from(">H", section, 0)
        keys, pos = [], 2
        for _ in range(count):
            (length,) = struct.unpack_from(">I", section, pos)
            keys.append(bytes(section[pos + 4:pos + 4 + length]))
            pos += 4 + length
    except struct.error:
        raise RepositoryCorrupt(f"the sealed keys of {where} are truncated") from None
    if any(e.key_index >= len(keys) for e in entries):
        raise RepositoryCorrupt(f"{where} names a key it does not hold")
    return entries, keys


# -- index files ----------------------------------------------------------------------------

def encode_index(packs: Iterable[tuple[bytes, int, list[PackEntry]]], index_key: bytes) -> bytes:
    out = bytearray(INDEX_MAGIC)
    for pack_id, size, entries in packs:
        out += _PACK_REC.pack(pack_id, size, len(entries))
        for e in entries:
            out += _pack_entry(e)
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

_SLICE = struct.Struct(">III")


def encode_slices(slices: list[tuple[int, int, int]]) -> str:
    """A file's pieces that are part of a chunk: (index among the file's chunks, offset in
    the chunk's plaintext, length), packed and base64-encoded for the file list."""
    return base64.b64encode(b"".join(_SLICE.pack(*s) for s in slices)).decode()


def decode_slices(encoded: str | None, where: str) -> dict[int, tuple[int, int]]:
    if not encoded:
        return {}
    try:
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) % _SLICE.size:
            raise ValueError("length")
    except ValueError:
        raise RepositoryCorrupt(f"{where}: the file's chunk slices are unreadable") from None
    return {index: (offset, length) for index, offset, length in _SLICE.iter_unpack(raw)}


ID_SEGMENT = 1 << 20  # chunk ids per encrypted segment (32 MiB): bounded memory for 2 TB VMs


@dataclass
class SnapshotHeader:
    """What the orchestrator may read of a snapshot (no file names, no data)."""

    meta: dict[str, Any]
    chunk_ids: bytes | bytearray  # 32 bytes per chunk, in file order

    def ids(self) -> Iterator[bytes]:
        for i in range(0, len(self.chunk_ids), ID_SIZE):
            yield bytes(self.chunk_ids[i:i + ID_SIZE])


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


SNAP2_MAGIC = b"HVBSNAP2"
SIGNATURE = 64  # Ed25519
_SIGN_CONTEXT = b"hvbackup snapshot v2\0"
# Version 2 parts have their own AADs: no part of a signed snapshot can be moved into an
# unsigned (version 1) file.
_AAD = {1: (b"hvb-snap-meta", b"hvb-snap-ids", b"hvb-snap-tree"),
        2: (b"hvb-snap2-meta", b"hvb-snap2-ids", b"hvb-snap2-tree")}
Signer = Callable[[bytes], bytes]


def signed_message(repository_id: str, body_digest: bytes) -> bytes:
    """What the writer signs: the repository and the SHA-256 of every byte before the
    signature (magic, meta, each segment with its count, sealed key, tree)."""
    return _SIGN_CONTEXT + repository_id.encode() + b"\0" + body_digest


def encode_snapshot(header: SnapshotHeader, tree: dict[str, Any], sealed_tree_key: bytes,
                    tree_key: bytes, index_key: bytes, *, sign: Signer | None = None,
                    repository_id: str = "") -> bytes:
    """The snapshot file. The chunk-id table is encrypted in segments, never copied whole.
    With ``sign`` (the writer's signing key): version 2, every part length-prefixed and the
    whole file signed; without: version 1 (kept for the tests of legacy repositories)."""
    version = 2 if sign is not None else 1
    aad_meta, aad_ids, aad_tree = _AAD[version]
    meta = zstandard.ZstdCompressor(level=3).compress(
        json.dumps(header.meta, sort_keys=True).encode())
    meta_ct = _seal_aead(index_key, meta, aad_meta)
    ids = memoryview(header.chunk_ids)
    step = ID_SEGMENT * ID_SIZE
    segments = [_seal_aead(index_key, ids[i:i + step], aad_ids + _u32(n))
                for n, i in enumerate(range(0, len(ids), step))]
    tree_plain = zstandard.ZstdCompressor(level=3).compress(
        json.dumps(tree, separators=(",", ":")).encode())
    tree_ct = _seal_aead(tree_key, tree_plain, aad_tree + sha256(meta_ct))
    parts = [SNAP2_MAGIC if sign else SNAP_MAGIC, _u32(len(meta_ct)), meta_ct,
             _u32(len(segments))]
    for segment in segments:
        parts += [_u32(len(segment)), segment]
    parts += [_u32(len(sealed_tree_key)), sealed_tree_key]
    if sign is None:
        return b"".join([*parts, tree_ct])
    parts += [_u32(len(tree_ct)), tree_ct]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    signature = sign(signed_message(repository_id, digest.digest()))
    if len(signature) != SIGNATURE:
        raise ValueError("the signing key did not give an Ed25519 signature")
    return b"".join([*parts, signature])


@dataclass
class _SnapshotParts:
    version: int
    meta_ct: bytes
    segments: list[bytes]
    sealed: bytes
    tree_ct: bytes
    signature: bytes = b""
    body_len: int = 0  # bytes covered by the signature


def _split_snapshot(data: bytes, where: str) -> _SnapshotParts:
    """The parts of a snapshot file, strictly: every length exact, the sealed key exactly as
    long as its recipients, nothing after the signature (a padded part is refused)."""
    magic = data[:8]
    if magic not in (SNAP_MAGIC, SNAP2_MAGIC):
        raise RepositoryCorrupt(f"{where} is not a snapshot file")
    version = 2 if magic == SNAP2_MAGIC else 1
    try:
        pos = 8

        def take() -> bytes:
            nonlocal pos
            (length,) = struct.unpack_from(">I", data, pos)
            piece = data[pos + 4:pos + 4 + length]
            if len(piece) != length:
                raise struct.error("short")
            pos += 4 + length
            return piece

        meta_ct = take()
        (count,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if count > (len(data) - pos) // 4:
            raise struct.error("count")
        segments = [take() for _ in range(count)]
        sealed = take()
        if version == 1:
            tree_ct, signature, body_len = data[pos:], b"", len(data)
        else:
            tree_ct = take()
            body_len = pos
            signature = data[pos:]
            if len(signature) != SIGNATURE:
                raise RepositoryCorrupt(f"{where} has {len(signature)} byte(s) after its file "
                                        f"list instead of a {SIGNATURE}-byte signature")
    except struct.error:
        raise RepositoryCorrupt(f"{where} is truncated") from None
    if not sealed or len(sealed) != 1 + sealed[0] * SEALED_ENTRY:
        raise RepositoryCorrupt(f"{where}: its sealed key has {len(sealed)} bytes, not what "
                                "its recipients take (altered or padded)")
    return _SnapshotParts(version, meta_ct, segments, sealed, tree_ct, signature, body_len)


SEALED_ENTRY = 8 + 32 + 12 + 48  # as keys.seal writes them: fingerprint, public, nonce, key


def snapshot_version(data: bytes, where: str) -> int:
    return _split_snapshot(data, where).version


def check_snapshot_signature(data: bytes, repository_id: str,
                             verify_signature: Callable[[bytes, bytes], bool],
                             where: str) -> None:
    """Raise RepositoryCorrupt unless ``data`` is a version-2 snapshot of this repository
    whose signature ``verify_signature(signature, message)`` accepts."""
    parts = _split_snapshot(data, where)
    if parts.version != 2:
        raise RepositoryCorrupt(f"{where} is a version 1 snapshot: it carries no signature")
    message = signed_message(repository_id, sha256(memoryview(data)[:parts.body_len]))
    if not verify_signature(parts.signature, message):
        raise RepositoryCorrupt(f"{where} is not signed by this client's orchestrator: "
                                "altered, or written by someone else")


def decode_snapshot_header(data: bytes, index_key: bytes, where: str) -> SnapshotHeader:
    parts = _split_snapshot(data, where)
    aad_meta, aad_ids, _ = _AAD[parts.version]
    try:
        meta = json.loads(zstandard.ZstdDecompressor().decompress(
            _open_aead(index_key, parts.meta_ct, aad_meta, where), max_output_size=2**26))
    except (zstandard.ZstdError, ValueError):
        raise RepositoryCorrupt(f"{where}: its figures are unreadable") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("time"), str):
        raise RepositoryCorrupt(f"{where}: its figures have no time")
    ids = b"".join(_open_aead(index_key, seg, aad_ids + _u32(n), where)
                   for n, seg in enumerate(parts.segments))
    if len(ids) % ID_SIZE:
        raise RepositoryCorrupt(f"{where}: its chunk ids have a bad length")
    return SnapshotHeader(meta, ids)


def snapshot_sealed_key(data: bytes, where: str) -> bytes:
    return _split_snapshot(data, where).sealed


def decode_snapshot_tree(data: bytes, tree_key: bytes, where: str) -> dict[str, Any]:
    parts = _split_snapshot(data, where)
    plain = _open_aead(tree_key, parts.tree_ct, _AAD[parts.version][2] + sha256(parts.meta_ct),
                       f"file list of {where}")
    decoded: dict[str, Any] = json.loads(zstandard.ZstdDecompressor().decompress(
        plain, max_output_size=2**32))
    return decoded
