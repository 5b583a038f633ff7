"""The benchmark's tree of large files, cut by content: a SQL Server dump, a mailbox, an
archive, an export; and what the next day does to them.

- ``COMPTA.bak``: an uncompressed native dump, 8 KiB pages in file order, each with its header
  (page id, LSN) then rows (numbers, which look random, and words), then free space; zstd
  brings it to about a third. The next day's dump: its header rewritten, three hot regions of
  pages rewritten (1 to 4 MiB each), 200 pages rewritten here and there, one page inserted near
  the start (everything after it shifts) and 20 MB of new pages at the end.
- ``MAILS.pst``: 4 KiB blocks, half text, half attachments (random); the next day, 60 blocks
  rewritten and 6 MB of new mail appended.
- ``ARCHIVES-2025.zip``: random bytes (compressed already); unchanged.
- ``export-ventes.csv``: lines of text; the next day, written anew with rows inserted in the
  middle and rows added at the end.

Everything is seeded: every tool reads the same bytes.
"""

from __future__ import annotations

import random
from pathlib import Path

PAGE = 8192
MB = 1_000_000
_WORDS = (b"facture client commande livraison stock article remise total TVA echeance reglement "
          b"fournisseur devis avoir compte journal ecriture lettrage DUPONT MARTIN BERNARD Lyon "
          b"Paris Nantes Lille EUR 2026-11-30 2026-12-01 19,99 120,00 1250,50").split()


def _text(rng: random.Random, words: int) -> bytes:
    """Words in random order: compressible like real text, never periodic."""
    return b" ".join(rng.choices(_WORDS, k=words))


class _Pages:
    """Pages of one database: the same rows vocabulary, a page's content from its rng."""

    def __init__(self, seed: int) -> None:
        self.text = _text(random.Random(seed), 300_000)

    def page(self, rng: random.Random, page_id: int, lsn: int) -> bytes:
        header = page_id.to_bytes(4, "little") + lsn.to_bytes(8, "little") + bytes(84)
        rows = rng.randrange(40, 70)
        numbers = rng.randbytes(rows * 40)
        at = rng.randrange(len(self.text) - 120 * rows)
        body = b"".join(numbers[i * 40:(i + 1) * 40]
                        + self.text[at + 120 * i:at + 120 * i + 60 + (i * 37) % 60]
                        for i in range(rows))
        return (header + body)[:PAGE].ljust(PAGE, b"\0")


def make_dump(path: Path, mib: int, seed: int = 7) -> None:
    rng, pages = random.Random(seed), _Pages(seed)
    with path.open("wb") as f:
        f.write(b"TAPE" + rng.randbytes(PAGE - 4))  # the backup set's header
        batch = []
        for page_id in range(mib * 1024 * 1024 // PAGE - 1):
            batch.append(pages.page(rng, page_id, 1_000_000 + page_id))
            if len(batch) == 1024:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))


def change_dump(path: Path, seed: int = 11) -> None:
    """The next night's dump of the same database (see the module docstring)."""
    rng, pages = random.Random(seed), _Pages(7)
    data = bytearray(path.read_bytes())
    count = len(data) // PAGE
    data[:PAGE] = b"TAPE" + rng.randbytes(PAGE - 4)
    for _ in range(3):  # hot regions
        start = rng.randrange(1, count - 1024)
        for page_id in range(start, start + rng.randrange(128, 512)):
            data[page_id * PAGE:(page_id + 1) * PAGE] = pages.page(rng, page_id, 2_000_000)
    for page_id in rng.sample(range(1, count), 200):  # scattered pages
        data[page_id * PAGE:(page_id + 1) * PAGE] = pages.page(rng, page_id, 2_000_001)
    at = rng.randrange(10, 200) * PAGE  # a page inserted near the start
    data[at:at] = pages.page(rng, count, 2_000_002)
    data += b"".join(pages.page(rng, count + 1 + i, 2_000_003) for i in range(20 * MB // PAGE))
    path.write_bytes(data)


def _mail_block(rng: random.Random, text: bytes) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(4096)
    at = rng.randrange(len(text) - 4096)
    return text[at:at + 4096]


def make_tree(root: Path, dump_mib: int = 1024) -> None:
    root.mkdir(parents=True, exist_ok=True)
    make_dump(root / "COMPTA.bak", dump_mib)
    rng = random.Random(21)
    text = _text(rng, 400_000)
    with (root / "MAILS.pst").open("wb") as f:
        for _ in range(300 * MB // 4096 // 256):
            f.write(b"".join(_mail_block(rng, text) for _ in range(256)))
    with (root / "ARCHIVES-2025.zip").open("wb") as f:
        for _ in range(200):
            f.write(rng.randbytes(MB))
    (root / "export-ventes.csv").write_bytes(_export(random.Random(22), 100 * MB, 0))


def _export(rng: random.Random, size: int, inserted: int) -> bytes:
    """An export of sales lines; ``inserted`` rows appear in the middle (a later day)."""
    lines, total, middle = [], 0, size // 2
    while total < size:
        if inserted and total >= middle:
            lines += [b"%d;INSERTED;%d\n" % (i, rng.randrange(10**6)) for i in range(inserted)]
            inserted = 0
        line = b"%d;%s;%d,%02d\n" % (len(lines), _text(rng, 6), rng.randrange(10**5),
                                     rng.randrange(100))
        lines.append(line)
        total += len(line)
    return b"".join(lines)


def change_tree(root: Path) -> None:
    change_dump(root / "COMPTA.bak")
    rng = random.Random(31)
    text = _text(rng, 100_000)
    pst = root / "MAILS.pst"
    with pst.open("r+b") as f:
        blocks = pst.stat().st_size // 4096
        for index in rng.sample(range(blocks), 60):
            f.seek(index * 4096)
            f.write(_mail_block(rng, text))
        f.seek(0, 2)
        for _ in range(6 * MB // 4096):
            f.write(_mail_block(rng, text))
    # Same seed as the first export: the same lines, a few inserted, more at the end.
    (root / "export-ventes.csv").write_bytes(_export(random.Random(22), 102 * MB, 500))


def main() -> None:
    """``python bench/bigfiles.py DAY1 DAY2 [DUMP_MIB]``: both days, each in its folder. Run in
    its own process by the benchmark, whose memory then stays that of a small process (the
    tools it starts inherit it in their peak resident size)."""
    import shutil
    import sys

    day1, day2 = Path(sys.argv[1]), Path(sys.argv[2])
    make_tree(day1, int(sys.argv[3]) if len(sys.argv) > 3 else 1024)
    shutil.copytree(day1, day2)
    change_tree(day2)


if __name__ == "__main__":
    main()
