"""Forgetting restore points and freeing the space nothing references any more.

* :func:`forget` removes snapshot files (the restore points retention let go); it is cheap and
  safe at any time: a running backup never needs an old snapshot file.
* :func:`prune` deletes the packs no remaining snapshot references. Only its deleting phase is
  exclusive: it waits for running backups to finish (their lease), re-reads everything under
  the exclusive lease, writes the new index first, then removes the old index files, then the
  packs. A crash at any point leaves a correct repository (at worst some garbage left).
  Packs that are only partly used stay as they are: rewriting them would need their keys, which
  the orchestrator does not have by design (see docs/repository-format.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.store import format as fmt
from orchestrator.store.locks import Lock
from orchestrator.store.repository import Repository, SnapshotInfo

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    snapshots: int = 0
    packs_kept: int = 0
    packs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    index_files_replaced: int = 0
    dry_run: bool = False


def forget(repo: Repository, snapshots: list[SnapshotInfo], *, dry_run: bool = False) -> None:
    for info in snapshots:
        if not dry_run:
            repo.target.delete(info.name)
        log.info("%s: forgot snapshot %s (%s)%s", repo.target.label, info.id[:12],
                 info.meta.get("time"), " (dry run)" if dry_run else "")


def prune(repo: Repository, *, dry_run: bool = False,
          wait: timedelta = timedelta(minutes=30)) -> PruneReport:
    """Delete unreferenced packs (see module docstring). Returns what was (or would be) done."""
    report = PruneReport(dry_run=dry_run)
    with Lock(repo.target, "exclusive", "prune").acquire(wait=wait):
        repo.sync_index()
        snapshots = repo.snapshots()
        report.snapshots = len(snapshots)
        referenced: set[bytes] = set()
        for info in snapshots:
            referenced.update(repo.snapshot_header(info).ids())
        packs = repo.cache.packs()
        keep: list[tuple[bytes, int, list[fmt.PackEntry]]] = []
        drop: list[tuple[bytes, int]] = []
        for pack_id, size in sorted(packs.items()):
            entries = repo.cache.pack_entries(pack_id)
            if any(e.chunk_id in referenced for e in entries):
                keep.append((pack_id, size, entries))
            else:
                drop.append((pack_id, size))
        report.packs_kept = len(keep)
        report.packs_deleted = [fmt.pack_name(p) for p, _ in drop]
        report.bytes_freed = sum(size for _, size in drop)
        if dry_run or not drop:
            return report
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
