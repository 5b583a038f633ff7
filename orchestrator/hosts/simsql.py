"""Simulated SQL Server data files and their native backups, streamed (constant memory).

A data file (.mdf) is a sequence of 8 KiB pages, as SQL Server writes it: a 96-byte header
(page type, object, page id, previous and next page, slot count, free bytes, the LSN of the
last change, a checksum), rows from the top (fixed columns: ids, dates, amounts; variable
columns: binary values and French accounting text), free space, and the slot array at the
bottom. Page 0 is the file header, 1 the PFS, 2 the GAM, 3 the SGAM, 9 the boot page. Such a
file compresses about 2.5x with zstd.

A day of activity changes it the way a database changes: a few hot regions (the current
month's rows and their indexes) are rewritten, a few pages anywhere, new pages are appended
(the file grows), and the file header takes the new LSN.

A backup (``write_dump``) follows ``BACKUP DATABASE`` (docs: "BACKUP (Transact-SQL)"): a
descriptor block (backup date, LSNs), then the data pages in file order and the active part of
the log, then a trailer holding the checksum (``WITH CHECKSUM``). ``WITH COMPRESSION`` makes
the pages and log one compressed stream: a change near the start changes every byte after it,
so compressed dumps of two nights share almost nothing, while uncompressed ones differ only
where pages changed. ``RESTORE VERIFYONLY`` is ``verify_dump``; ``RESTORE DATABASE`` writes
the pages back (``restore_dump``). Every function reads and writes a megabyte at a time.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAGE = 8192
PAGE_HEADER = 96
BATCH = 128  # pages per read or write: 1 MiB
BAK_MAGIC = b"HVBSIMBAK2\n"
DESCRIPTOR = 4096  # the dump's first block: magic, then JSON padded with spaces
TRAILER_TAG = b"HVBSIMEND "
TRAILER = len(TRAILER_TAG) + 64 + 1  # tag, sha256 hex of pages + log, newline
_HEADER = struct.Struct("<BBBBHHIIIIHHHQ")  # page id at 12, LSN at 30; checksum at 92
_ROW = struct.Struct("<BBHQIqI")
_SPECIAL = {0: 15, 1: 11, 2: 8, 3: 9, 9: 13}  # file header, PFS, GAM, SGAM, boot page
_VOCABULARY = (
    "facture", "client", "commande", "livraison", "stock", "article", "remise", "total", "TVA",
    "echeance", "reglement", "fournisseur", "devis", "avoir", "compte", "journal", "ecriture",
    "lettrage", "banque", "virement", "prelevement", "salaire", "conge", "acompte", "solde",
    "analytique", "exercice", "cloture", "immobilisation", "amortissement", "Dupont", "Martin",
    "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
    "Simon", "Lyon", "Paris", "Marseille", "Toulouse", "Nantes", "Lille", "Rennes", "Bordeaux",
    "SARL", "SAS", "EURL", "rue", "avenue", "boulevard", "mensuel", "trimestriel", "annuel",
    "valide", "annule", "brouillon", "transmis", "paye", "impaye",
)


def _text_pool() -> bytes:
    rng = random.Random("simsql text pool")
    words = []
    for _ in range(60_000):
        roll = rng.random()
        if roll < 0.15:
            words.append(f"{rng.randrange(100000):05d}")
        elif roll < 0.25:
            words.append(f"{rng.randrange(1, 99999)},{rng.randrange(100):02d}")
        else:
            words.append(rng.choice(_VOCABULARY))
    return " ".join(words).encode()


TEXT = _text_pool()


def text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of text-like data (business words, numbers, amounts)."""
    out = bytearray()
    while len(out) < size:
        at = rng.randrange(len(TEXT) - 4096)
        out += TEXT[at:at + min(4096, size - len(out))]
    return bytes(out)


def page(rng: random.Random, page_id: int, lsn: int) -> bytes:
    """One 8 KiB page with its header, rows, free space and slot array."""
    kind = _SPECIAL.get(page_id, 2 if page_id % 11 == 0 else 1)
    body = bytearray()
    slots: list[int] = []
    if kind in (1, 2):
        fill = PAGE_HEADER + int((PAGE - PAGE_HEADER) * rng.uniform(0.70, 0.97))
        binary = rng.randbytes(PAGE)
        used = 0
        while True:
            blob = 24 + rng.randrange(120) if kind == 1 else 8
            words = 60 + rng.randrange(220) if kind == 1 else 16
            length = _ROW.size + blob + words
            if PAGE_HEADER + len(body) + length + 2 * (len(slots) + 1) > fill:
                break
            slots.append(PAGE_HEADER + len(body))
            body += _ROW.pack(0x30, 0, length, page_id * 64 + len(slots),
                              rng.getrandbits(32), rng.getrandbits(40), rng.getrandbits(32))
            body += binary[used:used + blob]
            used += blob
            body += text(rng, words)
    else:  # allocation and boot pages: bitmaps, mostly set
        body += b"\xff" * rng.randrange(1000, 6000) + rng.randbytes(64)
        slots.append(PAGE_HEADER)
    slot_array = struct.pack(f"<{len(slots)}H", *reversed(slots))
    free = PAGE - PAGE_HEADER - len(body) - len(slot_array)
    header = _HEADER.pack(1, kind, 0, 0, 4 if kind == 1 else 0, 1 if kind == 2 else 0,
                          1000 + page_id // 4096, page_id, max(0, page_id - 1), page_id + 1,
                          len(slots), free, 1, lsn)
    raw = header.ljust(PAGE_HEADER, b"\0") + bytes(body) + bytes(free) + slot_array
    checksum = zlib.crc32(raw)
    return raw[:PAGE_HEADER - 4] + struct.pack("<I", checksum) + raw[PAGE_HEADER:]


def page_lsn(data: bytes) -> int:
    """The LSN recorded in a page's header."""
    return int(_HEADER.unpack_from(data)[13])


def create_database(path: Path, size_bytes: int, seed: object) -> dict[str, Any]:
    """Write a data file of about ``size_bytes`` (at least 16 pages); returns the state the
    daily change needs: page count, last LSN, hot regions."""
    pages = max(16, size_bytes // PAGE)
    rng = random.Random(f"{seed}:create")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for start in range(0, pages, BATCH):
            f.write(b"".join(page(rng, i, 1000 + i) for i in range(start,
                                                                     min(pages, start + BATCH))))
    return {"pages": pages, "lsn": 1000 + pages, "hot": _hot_regions(rng, pages)}


def _hot_regions(rng: random.Random, pages: int) -> list[list[int]]:
    length = max(4, pages // 200)
    return [[rng.randrange(16, max(17, pages - length)), length] for _ in range(3)]


def change_database(path: Path, info: dict[str, Any], seed: object) -> None:
    """One day of activity on a data file, in place (see module docstring). ``info`` is the
    state ``create_database`` returned (updated here); a file without it (a database restored
    from a dump) gets it from its size."""
    rng = random.Random(f"{seed}:day")
    pages = info.setdefault("pages", max(1, path.stat().st_size // PAGE))
    info.setdefault("lsn", 1000 + pages)
    hot = info.setdefault("hot", _hot_regions(random.Random(f"{seed}:hot"), pages))
    runs: list[tuple[int, int]] = []
    for start, length in hot:
        part = max(1, int(length * rng.uniform(0.25, 1.0)))
        runs.append((start + rng.randrange(length - part + 1), part))
    runs += [(rng.randrange(min(16, pages - 1), pages), 1) for _ in range(max(2, pages // 2000))]
    runs.append((0, 1))  # the file header page
    grow = max(1, pages // 500)
    runs.append((pages, grow))
    with path.open("r+b") as f:
        for start, length in runs:
            for at in range(start, start + length, BATCH):
                count = min(BATCH, start + length - at)
                info["lsn"] += count
                f.seek(at * PAGE)
                f.write(b"".join(page(rng, i, info["lsn"]) for i in range(at, at + count)))
    info["pages"] = pages + grow


def write_dump(mdf: Path, bak: Path, database: str, taken_utc: str, compressed: bool,
               seed: object) -> None:
    """``BACKUP DATABASE ... TO DISK`` of the data file ``mdf`` (see module docstring)."""
    data_bytes = mdf.stat().st_size
    rng = random.Random(f"{seed}:log:{taken_utc}")
    log = rng.randbytes(min(8 << 20, max(64 << 10, data_bytes // 100)))
    with mdf.open("rb") as f:
        lsn = max(page_lsn(f.read(PAGE_HEADER)), 1)
    descriptor = json.dumps({
        "database": database, "backup_start_date": taken_utc, "backup_type": "Database",
        "copy_only": True, "compressed": compressed, "first_lsn": lsn, "last_lsn": lsn + 1,
        "checkpoint_lsn": lsn, "page_size": PAGE, "data_bytes": data_bytes,
        "log_bytes": len(log)}).encode()
    digest = hashlib.sha256()
    squeeze = zlib.compressobj(1) if compressed else None  # speed first, as MS_XPRESS
    bak.parent.mkdir(parents=True, exist_ok=True)
    with mdf.open("rb") as src, bak.open("wb") as out:
        out.write((BAK_MAGIC + descriptor).ljust(DESCRIPTOR - 1) + b"\n")

        def put(block: bytes) -> None:
            digest.update(block)
            out.write(squeeze.compress(block) if squeeze else block)

        while block := src.read(BATCH * PAGE):
            put(block)
        put(log)
        if squeeze:
            out.write(squeeze.flush())
        out.write(TRAILER_TAG + digest.hexdigest().encode() + b"\n")


def read_descriptor(bak: Path) -> dict[str, Any] | None:
    """The dump's descriptor block, or None when the file is not a dump."""
    with bak.open("rb") as f:
        head = f.read(DESCRIPTOR)
    if not head.startswith(BAK_MAGIC) or len(head) < DESCRIPTOR:
        return None
    try:
        found: dict[str, Any] = json.loads(head[len(BAK_MAGIC):])
    except ValueError:
        return None
    return found


def _content(bak: Path, descriptor: dict[str, Any]) -> Iterator[bytes]:
    """The pages and log of a dump, decompressed, a megabyte at a time; raises ValueError
    when the compressed stream is damaged."""
    end = bak.stat().st_size - TRAILER
    unsqueeze = zlib.decompressobj() if descriptor["compressed"] else None
    with bak.open("rb") as f:
        f.seek(DESCRIPTOR)
        left = end - DESCRIPTOR
        while left > 0:
            block = f.read(min(left, BATCH * PAGE))
            if not block:
                raise ValueError("dump truncated")
            left -= len(block)
            if unsqueeze is None:
                yield block
                continue
            try:
                while block:  # at most a megabyte out per call, however well it compressed
                    yield unsqueeze.decompress(block, BATCH * PAGE)
                    block = unsqueeze.unconsumed_tail
            except zlib.error as exc:
                raise ValueError(f"compressed stream damaged: {exc}") from None
        if unsqueeze is not None and (rest := unsqueeze.flush()):
            yield rest
        if unsqueeze is not None and not unsqueeze.eof:
            raise ValueError("compressed stream incomplete")


def verify_dump(bak: Path) -> bool:
    """``RESTORE VERIFYONLY ... WITH CHECKSUM``: the dump is complete and its checksum holds."""
    descriptor = read_descriptor(bak)
    if descriptor is None or bak.stat().st_size < DESCRIPTOR + TRAILER:
        return False
    digest, size = hashlib.sha256(), 0
    try:
        for block in _content(bak, descriptor):
            digest.update(block)
            size += len(block)
    except ValueError:
        return False
    with bak.open("rb") as f:
        f.seek(-TRAILER, 2)
        trailer = f.read()
    return (size == descriptor["data_bytes"] + descriptor["log_bytes"]
            and trailer == TRAILER_TAG + digest.hexdigest().encode() + b"\n")


def restore_dump(bak: Path, mdf: Path) -> None:
    """``RESTORE DATABASE``: the data file as it was when the dump was taken."""
    descriptor = read_descriptor(bak)
    assert descriptor is not None, "verify_dump first"
    left = descriptor["data_bytes"]
    mdf.parent.mkdir(parents=True, exist_ok=True)
    with mdf.open("wb") as out:
        for block in _content(bak, descriptor):
            out.write(block[:left])
            left -= min(left, len(block))
            if not left:
                break


def damage(bak: Path) -> None:
    """Flip one byte in the middle of the pages (a bad sector on the staging disk)."""
    with bak.open("r+b") as f:
        f.seek(DESCRIPTOR + (bak.stat().st_size - DESCRIPTOR - TRAILER) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
