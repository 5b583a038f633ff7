"""Checking a repository, with or without the client's key.

1. Structure (no key beyond the writer's): every pack the index names is on the baie with the
   right size, and every chunk each snapshot needs is in the index.
2. Ciphertext integrity of a subset of packs (no key at all): a pack's name is the SHA-256 of
   its bytes.
3. Full decryption of that subset (with the client's key): each chunk decrypts and matches its
   id.
Each problem is named down to the snapshots it damages and, with the key, the files.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.errors import HvbError, KeyMismatch, RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.keys import PrivateKey, unseal
from orchestrator.store.repository import Repository, SnapshotInfo


@dataclass
class Problem:
    what: str
    pack: str = ""
    damaged: list[str] = field(default_factory=list)  # "snapshot <id> (<time>): <file>, ..."

    def __str__(self) -> str:
        lines = [self.what]
        lines += [f"  damages {d}" for d in self.damaged]
        return "\n".join(lines)


@dataclass
class VerifyReport:
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    chunks_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # files that are not ours: ignored
    unauthenticated: list[str] = field(default_factory=list)  # version 1 snapshots (unsigned)
    writer_proven: bool = True  # False: the key file records no signing key yet

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(repo: Repository, *, subset: float = 0.0, key: PrivateKey | None = None,
           seed: int | None = None,
           progress: Callable[[VerifyReport], None] | None = None) -> VerifyReport:
    """Check ``repo``; ``subset`` (0..1) of the packs are read back whole."""
    report = VerifyReport()
    repo.sync_index()
    snapshots = repo.snapshots()
    report.snapshots = len(snapshots)
    for name, what in sorted(repo.damaged_files.items()):
        hit = ([f"snapshot {name.rsplit('/', 1)[-1][:12]}: unreadable on this baie "
                "(restore it from the other baie)"] if name.startswith("snapshots/") else [])
        report.problems.append(Problem(what, damaged=hit))
    report.writer_proven = repo.writer_proven
    report.unauthenticated = [f"{s.id[:12]} ({s.meta.get('job', '')}, {s.meta['time'][:16]})"
                              for s in snapshots if not s.authenticated]
    for name, why in sorted(repo.refused.items()):
        report.problems.append(Problem(f"snapshot {name.rsplit('/', 1)[-1][:12]} is refused, "
                                       f"never restored: {why}"))
    indexed = repo.cache.packs()
    present = repo.packs_listed()
    report.packs = len(indexed)
    bad_packs: dict[bytes, str] = {}
    for pack_id, size in indexed.items():
        if pack_id not in present:
            bad_packs[pack_id] = f"pack {pack_id.hex()[:16]} is missing from the baie"
        elif present[pack_id] != size:
            bad_packs[pack_id] = (f"pack {pack_id.hex()[:16]} has {present[pack_id]} bytes "
                                  f"instead of {size}")

    headers = {s.name: repo.snapshot_header(s) for s in snapshots}
    missing_chunks: dict[str, list[bytes]] = {}
    for info in snapshots:
        lost = [cid for cid in set(headers[info.name].ids()) if not repo.cache.has(cid)]
        if lost:
            missing_chunks[info.name] = lost

    rng = random.Random(seed)
    candidates = sorted(p for p in indexed if p not in bad_packs)
    chosen = rng.sample(candidates, min(len(candidates), round(len(candidates) * subset))) \
        if subset > 0 else []
    if subset > 0 and candidates and not chosen:
        chosen = [rng.choice(candidates)]
    bad_chunks: dict[bytes, str] = {}
    for pack_id in chosen:
        problem = _read_pack(repo, pack_id, indexed[pack_id], key, report, bad_chunks)
        if problem:
            bad_packs[pack_id] = problem
        if progress:
            progress(report)

    trees: dict[str, dict[str, object]] = {}
    for pack_id, what in sorted(bad_packs.items(), key=lambda kv: kv[1]):
        ids = {e.chunk_id for e in repo.cache.pack_entries(pack_id)}
        # With the key, exactly the chunks that failed; without it, all the pack holds; less
        # those another pack holds too (a restore reads them there).
        affected = {c for c in ids if c in bad_chunks} or ids
        affected = {c for c in affected if not any(
            p != pack_id and p not in bad_packs for p, _e in repo.cache.locations(c))}
        report.problems.append(Problem(what, pack_id.hex(), _damaged(
            repo, snapshots, headers, affected, key, trees)))
    for name, lost in missing_chunks.items():
        info = next(s for s in snapshots if s.name == name)
        report.problems.append(Problem(
            f"{len(lost)} chunk(s) needed by snapshot {info.id[:12]} are in no pack",
            damaged=_damaged(repo, [info], headers, set(lost), key, trees)))
    report.strays = list(repo.strays.names)
    return report


def _read_pack(repo: Repository, pack_id: bytes, size: int, key: PrivateKey | None,
               report: VerifyReport, bad_chunks: dict[bytes, str]) -> str | None:
    name = fmt.pack_name(pack_id)
    try:
        data = repo.target.get(name)
    except HvbError as exc:
        return f"pack {pack_id.hex()[:16]} cannot be read: {exc}"
    report.packs_read += 1
    report.bytes_read += len(data)
    damaged = fmt.sha256(data) != pack_id
    what = f"pack {pack_id.hex()[:16]} is damaged: its content does not match its name"
    if key is None:
        return what if damaged else None
    # With the key, find exactly which chunks the damage reaches.
    entries = repo.cache.pack_entries(pack_id)
    try:
        length = fmt.trailer_length(data[-16:], name)
        _entries, sealed = fmt.parse_trailer(data[-length:], repo.writer.index_key, name)
        pack_keys = [unseal(s, key) for s in sealed]
    except (RepositoryCorrupt, KeyMismatch) as exc:
        return f"pack {pack_id.hex()[:16]}: its header is unreadable ({exc})"
    view = memoryview(data)
    failed = 0
    for entry in entries:
        try:
            plain = fmt.decrypt_blob(pack_keys[entry.key_index], entry,
                                     view[entry.offset:entry.offset
                                                           + entry.length], name)
            if fmt.chunk_id(plain, entry.flags, repo.writer.chunk_id_key) != entry.chunk_id:
                raise RepositoryCorrupt("content does not match its id")
        except RepositoryCorrupt as exc:
            bad_chunks[entry.chunk_id] = str(exc)
            failed += 1
        report.chunks_checked += 1
    if failed:
        return f"{what}; {failed} chunk(s) do not decrypt"
    return what if damaged else None


def _damaged(repo: Repository, snapshots: list[SnapshotInfo],
             headers: dict[str, fmt.SnapshotHeader], chunk_ids: set[bytes],
             key: PrivateKey | None, trees: dict[str, dict[str, object]]) -> list[str]:
    out = []
    for info in snapshots:
        ids = headers[info.name].chunk_ids
        hits = [i for i in range(len(ids) // fmt.ID_SIZE)
                if ids[i * fmt.ID_SIZE:(i + 1) * fmt.ID_SIZE] in chunk_ids]
        if not hits:
            continue
        label = f"snapshot {info.id[:12]} ({info.meta.get('job', '')}, {info.meta['time'][:16]})"
        if key is None:
            out.append(f"{label}: {len(hits)} chunk(s); give --key-file to name the files")
            continue
        if info.name not in trees:
            trees[info.name] = repo.snapshot_tree(info, key)
        files = trees[info.name]["files"]
        assert isinstance(files, list)
        names = sorted({f["path"] for f in files for i in hits
                        if f["first"] <= i < f["first"] + f["count"]})
        out.append(f"{label}: {', '.join(names)}")
    return out
