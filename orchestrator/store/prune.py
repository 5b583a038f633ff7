"""Forgetting restore points and freeing the space nothing references any more.

* :func:`forget` removes snapshot files (the restore points retention let go); it is cheap and
  safe at any time: a running backup never needs an old snapshot file.
* :func:`prune` deletes the packs no remaining snapshot references. Only its deleting phase is
  exclusive: it waits for running backups to finish (their lease), re-reads everything under
  the exclusive lease, writes the new index first, then removes the old index files, then the
  packs. A crash at any point leaves a correct repository (at worst some garbage left).
  Under that lease it also removes the packs that an upload cut short left (an append-only
  access writes under the final name: a crash leaves part of a pack there, which no index
  names and which ends without a pack's trailer).
  Packs mostly wasted (at least ``REPACK_WASTE`` of their bytes unreferenced) are rewritten:
  their live blobs are copied as they are, still encrypted, into new packs that carry the
  sealed keys of the packs they came from. The orchestrator never needs (nor has) those keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.errors import BaieError, RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.locks import Lock
from orchestrator.store.repository import Repository, SnapshotInfo

log = logging.getLogger(__name__)

REPACK_WASTE = 0.5


@dataclass
class PruneReport:
    snapshots: int = 0
    packs_kept: int = 0
    packs_deleted: list[str] = field(default_factory=list)
    packs_repacked: int = 0
    bytes_freed: int = 0
    index_files_replaced: int = 0
    incomplete_removed: list[str] = field(default_factory=list)  # uploads cut short
    dry_run: bool = False


def forget(repo: Repository, snapshots: list[SnapshotInfo], *, dry_run: bool = False) -> None:
    for info in snapshots:
        if not dry_run:
            repo.target.delete(info.name)
        log.info("%s: forgot snapshot %s (%s)%s", repo.target.label, info.id[:12],
                 info.meta.get("time"), " (dry run)" if dry_run else "")


def prune(repo: Repository, *, dry_run: bool = False,
          wait: timedelta = timedelta(minutes=30),
          forgotten: set[str] | None = None) -> PruneReport:
    """Delete unreferenced packs (see module docstring). Returns what was (or would be) done.
    ``forgotten`` (dry runs): snapshots a real retention would have forgotten first, counted as
    gone."""
    report = PruneReport(dry_run=dry_run)
    with Lock(repo.target, "exclusive", "prune").acquire(wait=wait):
        repo.sync_index()
        snapshots = repo.snapshots()
        damaged = repo.damaged_snapshots()
        if damaged or repo.refused:
            # What they reference is unknown: deleting anything could take what a real restore
            # point needs (a dry run would count those packs as freed).
            why = []
            if damaged:
                why.append(f"{len(damaged)} snapshot file(s) are damaged "
                           f"({', '.join(sorted(damaged)[:3])}): put them back from the other "
                           "baie or remove them (runbook HVB-STORE-CORRUPT)")
            if repo.refused:
                why.append(f"{len(repo.refused)} snapshot file(s) are refused (not signed by "
                           "this client's orchestrator, see 'hvbackup verify'): remove them "
                           "once investigated (runbook HVB-SNAPSHOT-UNKNOWN)")
            raise RepositoryCorrupt(f"{repo.target.label}: prune stopped, nothing deleted: "
                                    + "; ".join(why))
        report.incomplete_removed = _cut_short(repo)
        if not dry_run:
            for name in report.incomplete_removed:
                repo.target.delete(name)
                repo.cache.forget_damaged(bytes.fromhex(name[-64:]))
        if forgotten:
            snapshots = [info for info in snapshots if info.id not in forgotten]
        report.snapshots = len(snapshots)
        referenced: set[bytes] = set()
        for info in snapshots:
            referenced.update(repo.snapshot_header(info).ids())
        packs = repo.cache.packs()
        keep: list[tuple[bytes, int, list[fmt.PackEntry]]] = []
        drop: list[tuple[bytes, int]] = []
        rewrite: list[tuple[bytes, int, list[fmt.PackEntry]]] = []
        for pack_id, size in sorted(packs.items()):
            entries = repo.cache.pack_entries(pack_id)
            live = [e for e in entries if e.chunk_id in referenced]
            if not live:
                drop.append((pack_id, size))
            elif sum(e.length for e in live) < size * (1 - REPACK_WASTE):
                rewrite.append((pack_id, size, live))
            else:
                keep.append((pack_id, size, entries))
        report.packs_kept = len(keep)
        report.packs_repacked = len(rewrite)
        report.packs_deleted = [fmt.pack_name(p) for p, _ in drop + [(p, s) for p, s, _ in
                                                                    rewrite]]
        report.bytes_freed = sum(size for _, size in drop) + sum(
            size - sum(e.length for e in live) for _, size, live in rewrite)
        if dry_run or not (drop or rewrite):
            return report
        made, rewritten = _repack(repo, rewrite)
        keep += made
        for pack_id, size, _live in rewrite:
            if pack_id in rewritten:
                drop.append((pack_id, size))
            else:  # damaged: kept as it is, for verify to report and a person to decide
                keep.append((pack_id, size, repo.cache.pack_entries(pack_id)))
        old_index = [e.name for e in repo.target.list("index")]
        new_index = repo.write_index(keep) if keep else None
        for name in old_index:
            if name != new_index:
                repo.target.delete(name)
        report.index_files_replaced = len(old_index)
        for pack_id, _size in drop:
            repo.target.delete(fmt.pack_name(pack_id))
        repo.cache.remove_packs([p for p, _ in drop])
        repo.cache.forget_index_files(n for n in old_index if n != new_index)
    log.info("%s: pruned %d pack(s), %d bytes freed", repo.target.label,
             len(report.packs_deleted), report.bytes_freed)
    return report


def _cut_short(repo: Repository) -> list[str]:
    """Packs on the baie that no index names, whose bytes do not match their name and that do
    not end with a pack's trailer: uploads cut short (the end never written). A pack damaged
    later (its trailer whole) is kept, for verify to report."""
    indexed = repo.cache.packs()
    out = []
    for pack_id, size in repo.packs_listed().items():
        if pack_id in indexed:
            continue
        name = fmt.pack_name(pack_id)
        try:
            data = repo.target.get(name)
        except BaieError:
            continue
        if fmt.sha256(data) == pack_id:
            continue
        try:
            fmt.trailer_length(data[-16:], name)
        except RepositoryCorrupt:
            log.info("%s: %s is an upload cut short (%d bytes): removed", repo.target.label,
                     name, size)
            out.append(name)
    return out


def _repack(repo: Repository, rewrite: list[tuple[bytes, int, list[fmt.PackEntry]]],
            target_size: int = 32 * 1024 * 1024
            ) -> tuple[list[tuple[bytes, int, list[fmt.PackEntry]]], set[bytes]]:
    """Copy the live blobs of ``rewrite`` into new packs, uploaded; returns the new packs and
    the ids of the packs whose blobs were all copied (a damaged pack is left alone)."""
    made: list[tuple[bytes, int, list[fmt.PackEntry]]] = []
    rewritten: set[bytes] = set()
    data = bytearray()
    entries: list[fmt.PackEntry] = []
    keys: list[bytes] = []

    def flush() -> None:
        nonlocal data, entries, keys
        if not entries:
            return
        data += fmt.pack_trailer(entries, keys, repo.writer.index_key)
        pack_id = fmt.sha256(data)
        repo.target.put(fmt.pack_name(pack_id), data)
        repo.cache.add_pack(pack_id, len(data), entries, moved=True)
        made.append((pack_id, len(data), entries))
        data, entries, keys = bytearray(), [], []

    for pack_id, _size, live in rewrite:
        blob = repo.target.get(fmt.pack_name(pack_id))
        if fmt.sha256(blob) != pack_id:
            log.warning("%s: pack %s is damaged; left as it is", repo.target.label,
                        pack_id.hex()[:16])
            continue
        length = fmt.trailer_length(blob[-16:], fmt.pack_name(pack_id))
        _entries, sealed = fmt.parse_trailer(blob[-length:], repo.writer.index_key,
                                             fmt.pack_name(pack_id))
        for entry in live:
            key = sealed[entry.key_index]
            if key not in keys:
                keys.append(key)
            entries.append(fmt.PackEntry(entry.chunk_id, len(data), entry.length,
                                         entry.raw_length, entry.flags, keys.index(key)))
            data += blob[entry.offset:entry.offset + entry.length]
            if len(data) >= target_size:
                flush()
        rewritten.add(pack_id)
    flush()
    return made, rewritten
