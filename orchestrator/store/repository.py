"""A client's repository on one baie: its config, its index, its snapshots.

Layout (docs/repository-format.md)::

    config                 repository id, version, the writer key sealed to the client,
                           content-defined chunk sizes
    data/<xx>/<sha256>     packs, named by the SHA-256 of their bytes
    index/<sha256>         index files (which chunk is where)
    snapshots/<sha256>     snapshots, the commit point of a backup
    locks/<random>         leases

Every file is written once and never changed. Writing a backup needs the writer key (kept by
the orchestrator) and the recipients' public keys; reading data back needs a recipient's
private key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from orchestrator.baie.target import Entry, Target, is_append_only
from orchestrator.errors import (
    BaieError,
    ForgedRepository,
    KeyMismatch,
    RepositoryCorrupt,
    StoreError,
)
from orchestrator.store import format as fmt
from orchestrator.store.chunker import CDC_SIZES, LEGACY_CDC_SIZES, CdcSizes, check_cdc_sizes
from orchestrator.store.index import IndexCache
from orchestrator.store.keys import (
    PrivateKey,
    PublicKey,
    WriterKeys,
    seal,
    signature_valid,
    signer_fingerprint,
    unseal,
)
from orchestrator.store.names import Strays, ours

log = logging.getLogger(__name__)

REPO_VERSION = 1
# Beyond what authentication rejects (RepositoryCorrupt): the errors of decoding what did
# authenticate, so that one bad file is named and skipped rather than stopping everything.
UNREADABLE = (zstandard.ZstdError, struct.error, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str  # snapshots/<hex>
    meta: dict[str, Any]
    # Signed by the writer (version 2): every part, the job and time are the writer's. False:
    # a version 1 snapshot, written before snapshots were signed (see repository-format.md).
    authenticated: bool = True

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.meta["time"])


def load_or_create_writer_secret(path: Path, create: bool) -> bytes:
    """The orchestrator's writer secret for one client (a 0600 file in its state folder)."""
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    if not create:
        raise StoreError(
            f"the writer key {path} is missing while the repository exists: restore it from "
            "the orchestrator's self-backup, or with the client's key: "
            "'hvbackup keys writer-restore -c FILE CLIENT --key-file F'")
    return save_writer_secret(path, os.urandom(32))


def save_writer_secret(path: Path, secret: bytes) -> bytes:
    """Keep ``secret`` as the writer key at ``path`` unless one is there already; returns the
    one in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a name of its own, then linked into place: two runs of a new client
    # starting together never read a half-written key, and the second keeps the first's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secret).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return base64.b64decode(path.read_text().strip())
    finally:
        tmp.unlink(missing_ok=True)
    return secret


class Repository:
    def __init__(self, target: Target, writer: WriterKeys, recipients: list[PublicKey],
                 config: dict[str, Any], cache: IndexCache) -> None:
        self.target = target
        self.writer = writer
        self.recipients = recipients
        self.config = config
        self.cache = cache
        self.strays = Strays()  # files under data/, index/, snapshots/ that are not ours
        # Repository files found damaged since opened (name -> what is wrong): named, skipped.
        self.damaged_files: dict[str, str] = {}
        self._packs_listed: dict[bytes, int] | None = None
        self.indexed_before_listing: dict[bytes, int] | None = None
        self.config_repaired_from: str | None = None  # the config was copied back from there
        # Snapshot files on the baie that are not this writer's (altered, padded, forged):
        # left out of every listing, reported by verify. Name -> why.
        self.refused: dict[str, str] = {}
        # False when the client's key file records no signing key yet: the snapshots are
        # signed by this repository's writer, but nothing proves it is the client's.
        self.writer_proven = True

    @property
    def id(self) -> str:
        return str(self.config["id"])

    @property
    def cdc_seed(self) -> int:
        return int.from_bytes(self.writer.chunk_id_key[:4], "big") & 0x7FFFFFFF

    @property
    def cdc_sizes(self) -> CdcSizes:
        """Minimum, average and maximum content-defined chunk: those the repository was
        created with, so that a change of default never cuts every file anew."""
        if "cdc" not in self.config:
            return LEGACY_CDC_SIZES
        try:
            return check_cdc_sizes(self.config["cdc"])
        except ValueError as exc:
            raise RepositoryCorrupt(f"{self.target.label}: the repository config is damaged "
                                    f"({exc})") from None

    def close(self) -> None:
        self.cache.close()

    # -- opening --------------------------------------------------------------------------

    @staticmethod
    def read_config(target: Target) -> dict[str, Any] | None:
        if target.stat("config") is None:
            return None
        try:
            config: dict[str, Any] = json.loads(target.get("config"))
            if config.get("hvbackup_repository") != REPO_VERSION:
                raise ValueError("unsupported version")
            if not (isinstance(config.get("id"), str) and re.fullmatch(r"[0-9a-f]{32}",
                                                                        config["id"])):
                raise ValueError("bad repository id")
            base64.b64decode(config.get("writer_sealed", ""), validate=True)
            if not isinstance(config.get("writer_check"), str):
                raise ValueError("no writer check value")
        except (ValueError, AttributeError, TypeError) as exc:
            raise RepositoryCorrupt(f"{target.label}: the repository config is unreadable "
                                    f"({exc}); restore from the other baie (--baie), the next "
                                    "backup copies the config back from there") from None
        return config

    @classmethod
    def _config_from(cls, target: Target, other: Target | None, writer: WriterKeys
                     ) -> tuple[dict[str, Any] | None, bool]:
        """The config, or, when it is missing or damaged, the other baie's copy put back
        (only one made with the same writer key: the same repository). Returns (config,
        whether it was copied back); raises RepositoryCorrupt when damaged and not repaired."""
        try:
            config = cls.read_config(target)
            if config is not None or other is None:
                return config, False
            damage: RepositoryCorrupt | None = None
        except RepositoryCorrupt as exc:
            if other is None:
                raise
            damage = exc
        try:
            theirs = cls.read_config(other)
        except (RepositoryCorrupt, BaieError):
            theirs = None
        if theirs is None or theirs.get("writer_check") != writer.check:
            if damage is not None:
                raise damage
            return None, False
        try:
            target.put("config", other.get("config"))  # the same bytes on both copies
        except BaieError:
            if damage is not None:
                raise damage from None
            raise
        target.flush()
        log.warning("%s: the repository config was %s: copied back from %s", target.label,
                    "damaged" if damage else "missing", other.label)
        return theirs, True

    @classmethod
    def open_for_writing(cls, target: Target, writer_secret: bytes,
                         recipients: list[PublicKey], cache_root: Path,
                         now: Callable[[], datetime] = lambda: datetime.now(UTC),
                         other: Target | None = None) -> Repository:
        """Open (creating it on first use) with the orchestrator's writer key. ``other``: the
        second copy, from which a missing or damaged config is copied back."""
        writer = WriterKeys(writer_secret)
        config, repaired = cls._config_from(target, other, writer)
        if config is None:
            config = {
                "hvbackup_repository": REPO_VERSION, "id": secrets.token_hex(16),
                "created": now().isoformat(),
                "writer_sealed": base64.b64encode(seal(writer_secret, recipients)).decode(),
                "writer_check": writer.check,
                "recipients": [r.fingerprint.hex() for r in recipients],
                "cdc": list(CDC_SIZES),
            }
            target.put("config", json.dumps(config, indent=1).encode())
            target.flush()
        elif config.get("writer_check") != writer.check:
            raise StoreError(f"{target.label}: this repository was created with another writer "
                             "key than the orchestrator's; restore the right one with "
                             "'hvbackup keys writer-restore'")
        cache = IndexCache(cache_root / config["id"] / "index.sqlite")
        repo = cls(target, writer, recipients, config, cache)
        if repaired and other is not None:
            repo.config_repaired_from = other.label
        return repo

    @classmethod
    def open_with_key(cls, target: Target, key: PrivateKey, cache_root: Path) -> Repository:
        """Open for reading with a client (or escrow) private key."""
        config = cls.read_config(target)
        if config is None:
            raise StoreError(f"{target.label}: no repository here (no config file)")
        writer = WriterKeys(unseal(base64.b64decode(config["writer_sealed"]), key))
        if key.signer is not None and key.signer != writer.signer:
            raise ForgedRepository(
                f"{target.label}: this repository was not written by the orchestrator your key "
                f"file records (signing key {signer_fingerprint(writer.signer)}, expected "
                f"{signer_fingerprint(key.signer)}): it is refused; ask your provider")
        cache = IndexCache(cache_root / config["id"] / "index.sqlite")
        repo = cls(target, writer, [key.public], config, cache)
        repo.writer_proven = key.signer is not None
        return repo

    # -- index ----------------------------------------------------------------------------

    def sync_index(self) -> int:
        """Load index files the cache has not seen; adopt packs no index names (left by a
        backup that crashed after uploading them). Returns the number of packs adopted.
        A damaged index file is named (``damaged_files``) and skipped: the packs it described
        are adopted from their own headers. Files that are not ours are ignored."""
        known = self.cache.known_index_files()
        names = []
        for _index_id, entry in ours("index", self.target.list("index"), self.strays,
                                      self.target.label):
            names.append(entry.name)
            if entry.name in known:
                continue
            try:
                blob = self.target.get(entry.name)
                if fmt.sha256(blob).hex() != entry.name.rsplit("/", 1)[-1]:
                    raise RepositoryCorrupt(f"{entry.name} is damaged (its content does not "
                                            "match its name)")
                packs = list(fmt.decode_index(blob, self.writer.index_key, entry.name))
            except (RepositoryCorrupt, BaieError) as exc:
                self._damaged(entry.name, str(exc))
                continue
            except UNREADABLE as exc:  # what only a writer holding the key could cause
                self._damaged(entry.name, f"{entry.name} is unreadable ({exc})")
                continue
            for pack_id, size, entries in packs:
                self.cache.add_pack(pack_id, size, entries)
            self.cache.mark_index_files([entry.name])
        gone = known - set(names)
        if gone:  # a prune rewrote the index: start again from the files that remain
            log.info("index files were removed from %s: rebuilding the cache", self.target.label)
            self.cache.remove_packs(list(self.cache.packs()))
            self.cache.forget_index_files(known)
            return self.sync_index()
        return len(self.adopt_orphans())

    def list_packs(self) -> dict[bytes, int]:
        """The packs on the baie and their sizes (one listing; strays left out)."""
        self._packs_listed = {pack_id: entry.size for pack_id, entry in
                              ours("data", self.target.list("data"), self.strays,
                                   self.target.label)}
        return self._packs_listed

    def packs_listed(self) -> dict[bytes, int]:
        """The last listing of packs (taken by :meth:`sync_index`), or a new one."""
        return self._packs_listed if self._packs_listed is not None else self.list_packs()

    def _damaged(self, name: str, what: str) -> None:
        if name not in self.damaged_files:
            log.warning("%s: %s", self.target.label, what)
        self.damaged_files[name] = what

    def adopt_orphans(self) -> list[tuple[bytes, int, list[fmt.PackEntry]]]:
        """Index the packs no index file names. Each is read back whole first (these are few:
        the tail of an interrupted backup): a damaged one is remembered and never adopted."""
        indexed = self.cache.packs()
        # What the cache held before the listing: a pack another backup of this client adds
        # meanwhile may be missing from the listing without being missing from the baie.
        self.indexed_before_listing = indexed
        known_bad = self.cache.damaged()
        adopted = []
        for pack_id, size in self.list_packs().items():
            if pack_id in indexed or pack_id in known_bad:
                continue
            name = fmt.pack_name(pack_id)
            try:
                data = self.target.get(name)
                if fmt.sha256(data) != pack_id:
                    raise RepositoryCorrupt(f"{name} is damaged (its content does not match "
                                            "its name)")
                entries, _sealed = fmt.parse_trailer(
                    data[-fmt.trailer_length(data[-16:], name):], self.writer.index_key, name)
            except RepositoryCorrupt as exc:
                if is_append_only(self.target):
                    # Written under its final name: an upload cut short, or still under way
                    # from another process. Left aside this time, not remembered as damaged.
                    log.info("%s: pack %s left aside (incomplete?): %s", self.target.label,
                             name, exc)
                    continue
                log.warning("%s: pack %s left aside: %s", self.target.label, name, exc)
                self.cache.mark_damaged(pack_id, str(exc))
                continue
            except BaieError as exc:
                log.warning("%s: unreadable pack %s left aside: %s", self.target.label,
                            name, exc)
                continue
            self.cache.add_pack(pack_id, size, entries)
            adopted.append((pack_id, size, entries))
        if adopted:
            self.write_index(adopted)
            log.info("%s: %d pack(s) from an interrupted backup adopted", self.target.label,
                     len(adopted))
        return adopted

    def read_pack_header(self, pack_id: bytes, size: int
                         ) -> tuple[list[fmt.PackEntry], list[bytes]]:
        name = fmt.pack_name(pack_id)
        tail = self.target.get(name, max(0, size - 16), 16)
        length = fmt.trailer_length(tail, name)
        trailer = self.target.get(name, size - length, length)
        return fmt.parse_trailer(trailer, self.writer.index_key, name)

    def write_index(self, packs: list[tuple[bytes, int, list[fmt.PackEntry]]]) -> str:
        """An index file for ``packs``, written once they are durable, and durable itself."""
        blob = fmt.encode_index(packs, self.writer.index_key)
        name = f"index/{fmt.sha256(blob).hex()}"
        self.target.flush()
        self.target.put(name, blob)
        self.target.flush()
        self.cache.mark_index_files([name])
        return name

    # -- snapshots ------------------------------------------------------------------------

    def snapshots(self) -> list[SnapshotInfo]:
        """Every usable snapshot, oldest first (headers only: no key needed beyond the
        writer's). Two kinds of snapshot file are left out and named, and neither stops the
        others being listed and restored:

        * damaged: its content does not match its name, or it cannot be read (``damaged_files``;
          the other baie may hold it intact, and the next backup copies it back from there);
        * refused: intact as named, but not a snapshot this writer signed (altered, padded,
          parts of two snapshots put together, another writer's) (:attr:`refused`).

        A file that is not ours is ignored. Version 1 snapshots (unsigned) come with
        ``authenticated`` False."""
        self.refused = {}
        for name in [n for n in self.damaged_files if n.startswith("snapshots/")]:
            del self.damaged_files[name]
        out = []
        for _snap_id, entry in self.list_snapshots():
            info = self.read_snapshot(entry.name)
            if info is not None:
                out.append(info)
        return sorted(out, key=lambda s: (s.meta["time"], s.name))

    def list_snapshots(self) -> list[tuple[bytes, Entry]]:
        """The snapshot files (strays left out), with their sizes, without reading them."""
        return ours("snapshots", self.target.list("snapshots"), self.strays, self.target.label)

    def read_snapshot(self, name: str) -> SnapshotInfo | None:
        """One snapshot file's header, or None when it is damaged (then named in
        ``damaged_files``) or refused (then named in :attr:`refused`)."""
        try:
            data = self.target.get(name)
            if fmt.sha256(data).hex() != name.rsplit("/", 1)[-1]:
                raise RepositoryCorrupt(f"{name} is damaged (its content does not match its "
                                        "name)")
        except (RepositoryCorrupt, BaieError) as exc:
            self.refused.pop(name, None)
            self._damaged(name, str(exc))
            return None
        self.damaged_files.pop(name, None)
        try:
            info = self._snapshot_info(name, data)
        except RepositoryCorrupt as exc:
            self._refuse(name, str(exc))
            return None
        except UNREADABLE as exc:  # signed, or only a writer holding the key could cause it
            self._refuse(name, f"{name} is unreadable ({exc})")
            return None
        self.refused.pop(name, None)
        return info

    def _refuse(self, name: str, why: str) -> None:
        if name not in self.refused:
            log.warning("%s: %s refused: %s", self.target.label, name, why)
        self.refused[name] = why

    def damaged_snapshots(self) -> dict[str, str]:
        """Snapshot files found damaged by the last :meth:`snapshots` (name -> what)."""
        return {n: w for n, w in self.damaged_files.items() if n.startswith("snapshots/")}

    def _signed(self, name: str, data: bytes) -> bool:
        """True for a version 2 snapshot signed by this writer, False for a version 1 one;
        raises RepositoryCorrupt for anything else."""
        if fmt.snapshot_version(data, name) != 2:
            return False
        fmt.check_snapshot_signature(
            data, self.id, lambda sig, msg: signature_valid(self.writer.signer, sig, msg), name)
        return True

    def _snapshot_info(self, name: str, data: bytes) -> SnapshotInfo:
        signed = self._signed(name, data)
        header = fmt.decode_snapshot_header(data, self.writer.index_key, name)
        if not isinstance(header.meta, dict) or not isinstance(header.meta.get("time"), str):
            raise RepositoryCorrupt(f"{name} has no readable time")
        return SnapshotInfo(name, header.meta, authenticated=signed)

    def find_snapshot(self, ref: str, *, job: str | None = None) -> SnapshotInfo:
        """``latest`` or a (prefix of a) snapshot id, optionally among one job's snapshots."""
        snaps = [s for s in self.snapshots() if job is None or s.meta.get("job") == job]
        if not snaps:
            raise StoreError(f"{self.target.label}: no snapshot" + (f" for {job}" if job else ""))
        if ref == "latest":
            return snaps[-1]
        found = [s for s in snaps if s.id.startswith(ref)]
        refused = [n for n in self.refused if n.rsplit("/", 1)[-1].startswith(ref)]
        if not found and refused:
            raise RepositoryCorrupt(f"{self.target.label}: snapshot {ref} is refused: "
                                    f"{self.refused[refused[0]]}")
        damaged = [n for n in self.damaged_snapshots() if n.rsplit("/", 1)[-1].startswith(ref)]
        if not found and damaged:
            raise RepositoryCorrupt(f"{self.target.label}: snapshot {ref} is damaged on this "
                                    f"baie ({self.damaged_files[damaged[0]]}): restore it from "
                                    "the other baie (--baie)")
        if len(found) != 1:
            raise StoreError(f"{self.target.label}: {'no' if not found else 'several'} "
                             f"snapshot(s) match {ref!r}")
        return found[0]

    def _snapshot_data(self, info: SnapshotInfo) -> bytes:
        """The snapshot's bytes, checked again (the baie may have changed them since they
        were listed): its name, and for a signed one its signature."""
        data = self.target.get(info.name)
        if fmt.sha256(data).hex() != info.id:
            raise RepositoryCorrupt(f"{self.target.label}: {info.name} is damaged "
                                    "(its content does not match its name)")
        if self._signed(info.name, data) != info.authenticated:
            raise RepositoryCorrupt(f"{self.target.label}: {info.name} changed version")
        return data

    def snapshot_header(self, info: SnapshotInfo) -> fmt.SnapshotHeader:
        return fmt.decode_snapshot_header(self._snapshot_data(info), self.writer.index_key,
                                          info.name)

    def snapshot_tree(self, info: SnapshotInfo, key: PrivateKey) -> dict[str, Any]:
        data = self._snapshot_data(info)
        try:
            tree_key = unseal(fmt.snapshot_sealed_key(data, info.name), key)
        except KeyMismatch as exc:
            raise KeyMismatch(f"{self.target.label}: snapshot {info.id[:12]}: {exc}") from None
        return fmt.decode_snapshot_tree(data, tree_key, info.name)
