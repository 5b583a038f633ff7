"""The second copy: repository files are immutable and named by content, so copying is by
name — whatever the second baie lacks (or holds with another size: an upload cut short, or
damaged there) is copied, packs first and snapshots last (the same commit order as a backup),
and nothing is ever deleted there. A file is copied only when its bytes match its name (damage
on the first baie never spreads to the second). Files that are not the repository's
(``.DS_Store``, ``Thumbs.db``: store/names.py) are left alone, on both baies.

The copy holds a shared lease on both baies from its first listing to its last upload: a prune
of the second baie meanwhile would otherwise adopt the packs just copied (no snapshot names
them yet), find them unreferenced and delete them, and the snapshot copied next would point at
nothing. A prune of the first baie would likewise remove packs the copy is about to read.

:func:`parity` says whether the two baies hold the same restore points, by content: the same
snapshots on each side, and on each baie every chunk those snapshots reference found, through
that baie's own index (a prune of the second baie rewrites its index and packs), in a pack
present there with its indexed size. No pack is read: it lists both baies, reads the snapshots'
chunk tables once (from the first baie; a snapshot is named by its content, so it is the same
file on the second), and keeps the second baie's index in a cache of its own next to the first
one's, so that only its new index files are read each night. Reading the packs back is
``verify``'s work."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.baie.target import Target
from orchestrator.errors import RepositoryCorrupt
from orchestrator.store import format as fmt
from orchestrator.store.index import IndexCache
from orchestrator.store.locks import Lock
from orchestrator.store.names import content_id
from orchestrator.store.repository import UNREADABLE, Repository

log = logging.getLogger(__name__)

ORDER = ("config", "data", "index", "snapshots")
WAIT = timedelta(minutes=30)  # a prune of either baie is given this long to end


@contextmanager
def leased(source: Target, destination: Target, doing: str,
           wait: timedelta = WAIT) -> Iterator[None]:
    """Shared leases on both baies (the source's first: no prune waits on us while we wait)."""
    with Lock(source, "shared", f"{doing} to {destination.label}").acquire(wait=wait), \
            Lock(destination, "shared", f"{doing} from {source.label}").acquire(wait=wait):
        yield


def copy_repository(source: Target, destination: Target, *, wait: timedelta = WAIT) -> int:
    """Copy what ``destination`` lacks, under a shared lease on both; returns the bytes copied.
    Idempotent. Raises RepositoryLocked when a prune holds either baie longer than ``wait``."""
    copied = 0
    with leased(source, destination, "copy", wait):
        for prefix in ORDER:
            destination.flush()  # each kind durable before what refers to it
            if prefix == "config":
                if destination.stat("config") is None and source.stat("config") is not None:
                    data = source.get("config")
                    destination.put("config", data)
                    copied += len(data)
                continue
            present = {e.name: e.size for e in destination.list(prefix)}
            for entry in source.list(prefix):
                wanted = content_id(prefix, entry.name)
                if wanted is None or present.get(entry.name) == entry.size:
                    continue  # not ours; or there whole (not absent, not cut short there)
                data = source.get(entry.name)
                if fmt.sha256(data) != wanted:
                    log.warning("%s: %s is damaged: not copied to %s", source.label,
                                entry.name, destination.label)
                    continue
                destination.put(entry.name, data)
                copied += len(data)
        destination.flush()
    return copied


@dataclass
class Parity:
    """What differs between the two baies; all empty when they hold the same restore points."""

    first: str
    second: str
    lacking_snapshots: dict[str, list[str]] = field(default_factory=dict)  # baie -> ids
    bad_packs: dict[str, list[str]] = field(default_factory=dict)  # baie -> "name: why"

    @property
    def identical(self) -> bool:
        return not (any(self.lacking_snapshots.values()) or any(self.bad_packs.values()))

    def problems(self) -> list[str]:
        """One line per difference, snapshots first (the restore points a client misses)."""
        out = [f"{baie} lacks restore point {sid[:12]}"
               for baie, ids in self.lacking_snapshots.items() for sid in ids]
        out += [f"{baie}: {what}" for baie, bad in self.bad_packs.items() for what in bad]
        return out

    def summary(self) -> str:
        lacking = sum(map(len, self.lacking_snapshots.values()))
        packs = sum(map(len, self.bad_packs.values()))
        parts = []
        if lacking:
            parts.append(f"{lacking} restore point(s) are not on both baies")
        if packs:
            parts.append(f"{packs} problem(s) with the packs the restore points need "
                         "(missing, incomplete, or in no index)")
        return "; ".join(parts)


def parity(source: Repository, destination: Target, *, wait: timedelta = WAIT,
           in_progress: Callable[[], set[str]] | None = None) -> Parity:
    """Compare ``source`` with ``destination``, the same repository on another baie, under
    shared leases (module docstring). The restore points of runs still ``in_progress`` (run
    uids: another job of the client, whose own copy has not happened yet) are left out: asked
    before the listings and again after them, so that a run that began meanwhile is left out
    too.
    Raises RepositoryLocked, BaieError, RepositoryCorrupt."""
    first, second = source.target, destination
    result = Parity(first.label, second.label)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in second.label)
    other = IndexCache(source.cache.path.with_name(f"index-of-{safe}.sqlite"))
    try:
        with leased(first, second, "parity check", wait):
            running = set(in_progress()) if in_progress else set()
            source.sync_index()
            damaged = _sync_index(second, other, source.writer.index_key)
            snaps = {t.label: {e.name for e in t.list("snapshots")
                               if content_id("snapshots", e.name) is not None}
                     for t in (first, second)}
            infos = source.snapshots()
            running |= set(in_progress()) if in_progress else set()
            pending = {i.name for i in infos if i.meta.get("run") in running}
            for here, there in ((first, second), (second, first)):
                result.lacking_snapshots[here.label] = sorted(
                    n.rsplit("/", 1)[-1]
                    for n in snaps[there.label] - snaps[here.label] - pending)
            referenced: set[bytes] = set()
            for info in infos:
                if info.name not in pending:
                    referenced.update(source.snapshot_header(info).ids())
            for target, cache in ((first, source.cache), (second, other)):
                result.bad_packs[target.label] = _bad_packs(target, cache, referenced)
            result.bad_packs[second.label] += damaged
    finally:
        other.close()
    if not result.identical:
        log.warning("%s and %s differ: %s", first.label, second.label,
                    "; ".join(result.problems()[:10]))
    return result


def _sync_index(target: Target, cache: IndexCache, index_key: bytes) -> list[str]:
    """Bring ``cache`` to what ``target``'s index files say (read-only: nothing is adopted).
    Files that are not ours are left out; a damaged index file is skipped (and read again
    next time): returns one line for each."""
    known = cache.known_index_files()
    names = [e.name for e in target.list("index") if content_id("index", e.name) is not None]
    if known - set(names):  # a prune rewrote the index: start again from what remains
        cache.remove_packs(list(cache.packs()))
        cache.forget_index_files(known)
        known = set()
    damaged = []
    for name in names:
        if name in known:
            continue
        try:
            blob = target.get(name)
            if fmt.sha256(blob).hex() != name.rsplit("/", 1)[-1]:
                raise RepositoryCorrupt(f"{name} is damaged (its content does not match its "
                                        "name)")
            packs = list(fmt.decode_index(blob, index_key, f"{target.label}: {name}"))
        except (RepositoryCorrupt, *UNREADABLE) as exc:
            log.warning("%s: index file %s skipped: %s", target.label, name, exc)
            damaged.append(f"index file {name} is damaged, skipped ({exc})")
            continue
        for pack_id, size, entries in packs:
            cache.add_pack(pack_id, size, entries)
        cache.mark_index_files([name])
    return damaged


def _bad_packs(target: Target, cache: IndexCache, referenced: set[bytes]) -> list[str]:
    """What ``referenced`` chunks lack on ``target``: an index entry, or their pack whole."""
    present = {e.name: e.size for e in target.list("data")}
    indexed = cache.packs()
    wanted: set[bytes] = set()
    unindexed = 0
    for chunk_id in referenced:
        found = cache.lookup(chunk_id)
        if found is None:
            unindexed += 1
        else:
            wanted.add(found[0])
    bad = [f"{unindexed} chunk(s) the restore points reference are in no index"] \
        if unindexed else []
    for pack_id in sorted(wanted):
        name = fmt.pack_name(pack_id)
        size = present.get(name)
        if size is None:
            bad.append(f"{name} is missing")
        elif size != indexed.get(pack_id):
            bad.append(f"{name} is {size} bytes instead of {indexed.get(pack_id)}")
    return bad
