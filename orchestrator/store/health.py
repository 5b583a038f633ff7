"""What a backup checks of the baie before it counts on it, and what it repairs.

Dedup trusts the index: a chunk it finds there is not sent again. So before a backup reads
anything, the packs the index names are checked against the baie, cheaply:

* every run, the listing of ``data/`` with sizes (already taken to adopt orphans): a pack
  missing, or of another size than indexed;
* every run, the headers of a few packs picked at random (``HEADER_CHECKS``, two small
  ranged reads each): they must decrypt and list the entries the index has;
* every run, a rolling sample read back whole: the packs checked longest ago (never first),
  up to ``FULL_CHECK_BYTES`` (at least one pack); the SHA-256 must be the pack's name. The
  same packs are read back on the other baie too, when the run has one: a flip there that
  keeps the file's size is seen by no listing, and the copy would never send the pack again.
  A pack damaged there is put back from this baie, whose copy was just found intact.

A pack that fails is dropped from the index cache (its chunks' other places, if any, take
over), so the backup sends again whatever the source still holds of it. When the other baie
holds the same pack intact (same name, same bytes: names are SHA-256), it is copied back
instead, and nothing needs sending. A pack found damaged is remembered in the cache and never
adopted again; it stays on the baie (a backup never deletes) for a person to look at.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from orchestrator.baie.target import Target, is_append_only
from orchestrator.errors import BaieError, RepositoryCorrupt, StoreError
from orchestrator.store import format as fmt
from orchestrator.store.repository import Repository

log = logging.getLogger(__name__)

HEADER_CHECKS = 8
FULL_CHECK_BYTES = 64 * 1024 * 1024
# Snapshot files: those of another size than when seen intact, those never seen, and the one
# read back longest ago, each up to this size (a 2 TB image's file is 128 MiB of chunk ids:
# ``hvbackup verify`` and restores read those).
SNAPSHOT_CHECK_BYTES = 16 * 1024 * 1024


@dataclass
class PackDamage:
    pack: bytes
    what: str  # "is missing from the baie", "has 12 bytes instead of 34", ...
    repaired_from: str | None = None  # the baie it was copied back from

    @property
    def name(self) -> str:
        return fmt.pack_name(self.pack)

    def __str__(self) -> str:
        told = f"pack {self.pack.hex()[:16]} {self.what}"
        return told + (f" (copied back from {self.repaired_from})" if self.repaired_from
                       else " (its chunks are sent again)")


@dataclass
class Health:
    """What the checks before a backup found on one baie."""

    baie: str
    packs: list[PackDamage] = field(default_factory=list)
    # Packs of the rolling sample found damaged on the other baie (repaired_from: this one).
    other_packs: list[PackDamage] = field(default_factory=list)
    other: str | None = None  # the other baie's name, when it was read
    files: dict[str, str] = field(default_factory=dict)  # damaged index / snapshot files
    repaired_files: list[str] = field(default_factory=list)  # copied back from the other
    strays: list[str] = field(default_factory=list)  # files that are not ours, ignored
    packs_checked: int = 0
    headers_checked: int = 0
    bytes_read: int = 0

    @property
    def found(self) -> bool:
        return bool(self.packs or self.files or self.other_packs)

    @property
    def repaired(self) -> list[PackDamage]:
        return [d for d in self.packs if d.repaired_from]

    @property
    def resent(self) -> list[PackDamage]:
        return [d for d in self.packs if not d.repaired_from]

    def summary(self) -> str:
        """One sentence for the run's finding (the hotline reads it)."""
        parts = []
        if self.packs:
            parts.append(f"{len(self.packs)} damaged or missing pack(s) on {self.baie}: "
                         f"{len(self.repaired)} copied back from the other baie, "
                         f"{len(self.resent)} dropped from the index (what the source still "
                         "holds of them is sent again)")
        unrepaired = {n: w for n, w in self.files.items() if n not in self.repaired_files}
        if self.repaired_files:
            parts.append(f"{len(self.repaired_files)} damaged file(s) copied back from the "
                         f"other baie ({', '.join(sorted(self.repaired_files)[:5])})")
        if unrepaired:
            parts.append(f"{len(unrepaired)} damaged file(s) skipped: "
                         + "; ".join(sorted(unrepaired.values())[:5]))
        if self.other_packs:
            fixed = [d for d in self.other_packs if d.repaired_from]
            parts.append(f"{len(self.other_packs)} damaged pack(s) on {self.other}, found "
                         f"by reading them back: {len(fixed)} put back from {self.baie}"
                         + ("" if len(fixed) == len(self.other_packs) else
                            f", {len(self.other_packs) - len(fixed)} could not be (see the "
                            "run's log)"))
        details = "; ".join(str(d) for d in self.packs[:5])
        return "; ".join(parts) + (f" [{details}]" if details else "")


def check(repo: Repository, *, other: Target | None = None, rng: random.Random | None = None,
          header_checks: int = HEADER_CHECKS, full_check_bytes: int = FULL_CHECK_BYTES,
          now: float | None = None) -> Health:
    """Check the packs the cache indexes against the baie (after ``repo.sync_index()``), drop
    those that fail, copy them back from ``other`` when it holds them intact. Also copies back
    damaged index and snapshot files that ``other`` holds intact. Returns what was found."""
    rng = rng or random.Random()
    health = Health(repo.target.label)
    listed = repo.packs_listed()
    current = repo.cache.packs()
    before = repo.indexed_before_listing
    # Only packs indexed before the listing was taken are judged by it (see adopt_orphans).
    indexed = current if before is None else {p: s for p, s in before.items() if p in current}
    bad: dict[bytes, str] = {}
    for pack_id, size in indexed.items():
        if pack_id not in listed:
            bad[pack_id] = "is missing from the baie"
        elif listed[pack_id] != size:
            bad[pack_id] = f"has {listed[pack_id]} bytes instead of {size}"
    rolling = [p for p in repo.cache.least_checked(64) if p in indexed and p not in bad]
    full: list[bytes] = []
    budget = 0
    for pack_id in rolling:
        if full and budget + indexed[pack_id] > full_check_bytes:
            break
        full.append(pack_id)
        budget += indexed[pack_id]
    rest = [p for p in indexed if p not in bad and p not in full]
    intact: list[bytes] = []
    for pack_id in full:
        problem = _read_back(repo, pack_id, health, intact)
        if problem:
            bad[pack_id] = problem
    repo.cache.mark_checked([p for p in full if p not in bad], int(now or time.time()))
    if other is not None:
        other = _read_back_other(repo, other, intact, health)
    for pack_id in rng.sample(rest, min(header_checks, len(rest))):
        problem = _header(repo, pack_id, indexed[pack_id], health)
        if problem:
            bad[pack_id] = problem
    for pack_id, what in sorted(bad.items()):
        damage = PackDamage(pack_id, what)
        health.packs.append(damage)
        entries = repo.cache.pack_entries(pack_id)
        repo.cache.remove_packs([pack_id])
        if pack_id in listed:  # there but wrong: never adopted again (a missing one may be)
            repo.cache.mark_damaged(pack_id, what)
        log.warning("%s: pack %s %s", repo.target.label, pack_id.hex()[:16], what)
        if other is not None:
            try:
                if _copy_back(repo, other, pack_id, entries):
                    damage.repaired_from = other.label
            except BaieError as exc:  # unreachable: not waited for again for each pack
                log.warning("%s: not used to repair %s: %s", other.label, repo.target.label,
                            exc)
                other = None
    _check_snapshots(repo, int(now or time.time()))
    health.files = dict(repo.damaged_files)
    if other is not None:
        for name in sorted(health.files):
            if _copy_file_back(repo.target, other, name):
                health.repaired_files.append(name)
        if health.repaired_files:
            repo.damaged_files = {n: w for n, w in repo.damaged_files.items()
                                  if n not in health.repaired_files}
            repo.sync_index()  # a repaired index file is read now
    if repo.config_repaired_from:  # put back when the repository was opened
        health.files["config"] = "the repository config was missing or damaged"
        health.repaired_files.append("config")
    health.strays = list(repo.strays.names)
    return health


def _check_snapshots(repo: Repository, now: int) -> None:
    """Snapshot files, from their listing: one whose size changed since it was seen intact is
    read back, as are new ones and the one read back longest ago (up to
    ``SNAPSHOT_CHECK_BYTES`` each); damaged ones are named in ``repo.damaged_files``."""
    listed = {entry.name: entry.size for _id, entry in repo.list_snapshots()}
    known = repo.cache.snapshot_files()
    repo.cache.forget_snapshot_files([n for n in known if n not in listed])
    changed = [n for n, size in listed.items() if n in known and known[n][0] != size]
    new = [n for n in listed if n not in known]
    steady = sorted((n for n in listed if n in known and n not in changed
                     and listed[n] <= SNAPSHOT_CHECK_BYTES), key=lambda n: (known[n][1], n))
    seen = []
    for name in changed + [n for n in new if listed[n] <= SNAPSHOT_CHECK_BYTES] + steady[:1]:
        if repo.read_snapshot(name) is not None:
            seen.append((name, listed[name], now))
    seen += [(n, listed[n], now) for n in new if listed[n] > SNAPSHOT_CHECK_BYTES]
    repo.cache.mark_snapshot_files(seen)


def _read_back(repo: Repository, pack_id: bytes, health: Health,
               intact: list[bytes]) -> str | None:
    name = fmt.pack_name(pack_id)
    try:
        data = repo.target.get(name)
    except BaieError as exc:
        if exc.permanent:
            return f"cannot be read ({exc})"
        raise
    health.packs_checked += 1
    health.bytes_read += len(data)
    if fmt.sha256(data) != pack_id:
        return "is damaged (its content does not match its name)"
    intact.append(pack_id)
    return None


def _read_back_other(repo: Repository, other: Target, intact: list[bytes],
                     health: Health) -> Target | None:
    """Read back on ``other`` the packs just found intact here; a damaged one there is put
    back from here. Returns ``other``, or None when it cannot be reached (it is then not used
    to repair this baie either: the backup sends again what it must)."""
    health.other = other.label
    for pack_id in intact:
        name = fmt.pack_name(pack_id)
        try:
            if other.stat(name) is None:
                continue  # not copied there yet: the copy sends it
            data = other.get(name)
        except BaieError as exc:
            if exc.permanent:
                continue
            log.warning("%s: not read back: %s", other.label, exc)
            return None
        health.bytes_read += len(data)
        if fmt.sha256(data) == pack_id:
            continue
        damage = PackDamage(pack_id, "is damaged (its content does not match its name)")
        health.other_packs.append(damage)
        log.warning("%s: pack %s %s", other.label, pack_id.hex()[:16], damage.what)
        if is_append_only(other):  # only adds files: the maintenance removes the bad one
            log.warning("%s: pack %s not put back: the access only adds files; the "
                        "maintenance must remove it, the copy then sends it again",
                        other.label, pack_id.hex()[:16])
            continue
        try:
            good = repo.target.get(name)  # read again: not held in memory meanwhile
            if fmt.sha256(good) != pack_id:
                raise StoreError(f"it changed on {repo.target.label} too")
            other.put(name, good)
            other.flush()
        except (BaieError, StoreError) as exc:
            log.warning("%s: pack %s not put back from %s: %s", other.label,
                        pack_id.hex()[:16], repo.target.label, exc)
            continue
        damage.repaired_from = repo.target.label
    return other


def _header(repo: Repository, pack_id: bytes, size: int, health: Health) -> str | None:
    try:
        entries, _sealed = repo.read_pack_header(pack_id, size)
    except RepositoryCorrupt as exc:
        return f"has a damaged header ({exc})"
    except BaieError as exc:
        if exc.permanent:
            return f"cannot be read ({exc})"
        raise
    health.headers_checked += 1
    if set(entries) != set(repo.cache.pack_entries(pack_id)):
        return "holds other chunks than the index says (swapped or replaced)"
    return None


def _copy_back(repo: Repository, other: Target, pack_id: bytes,
               entries: list[fmt.PackEntry]) -> bool:
    """Put back the pack from ``other`` when it holds it intact; index it again. Raises
    BaieError when ``other`` cannot be reached (or the first baie cannot be written)."""
    name = fmt.pack_name(pack_id)
    if is_append_only(repo.target) and repo.target.stat(name) is not None:
        # The damaged file cannot be replaced through an access that only adds files: its
        # chunks are sent again in new packs, and the maintenance deals with the old one.
        log.info("%s: pack %s not copied back (append-only access)", repo.target.label,
                 pack_id.hex()[:16])
        return False
    try:
        if other.stat(name) is None:
            return False
        data = other.get(name)
    except BaieError as exc:
        if not exc.permanent:
            raise
        log.warning("pack %s not copied back from %s: %s", pack_id.hex()[:16], other.label, exc)
        return False
    if fmt.sha256(data) != pack_id:
        log.warning("%s: pack %s is damaged there too", other.label, pack_id.hex()[:16])
        return False
    repo.target.put(name, data)  # the first baie failing is the backup's error
    repo.target.flush()
    if not entries:  # only known by its header
        entries, _sealed = fmt.parse_trailer(data[-fmt.trailer_length(data[-16:], name):],
                                             repo.writer.index_key, name)
    repo.cache.forget_damaged(pack_id)
    repo.cache.add_pack(pack_id, len(data), entries)
    repo.packs_listed()[pack_id] = len(data)
    log.info("%s: pack %s copied back from %s", repo.target.label, pack_id.hex()[:16],
             other.label)
    return True


def _copy_file_back(target: Target, other: Target, name: str) -> bool:
    """A damaged index or snapshot file put back from ``other``, if it holds it intact."""
    try:
        if other.stat(name) is None:
            return False
        data = other.get(name)
        if fmt.sha256(data).hex() != name.rsplit("/", 1)[-1]:
            return False
        target.put(name, data)
        target.flush()
    except BaieError as exc:
        log.warning("%s not copied back from %s: %s", name, other.label, exc)
        return False
    log.info("%s: %s copied back from %s", target.label, name, other.label)
    return True
