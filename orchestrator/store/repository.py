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
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.baie.target import Target
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

log = logging.getLogger(__name__)

REPO_VERSION = 1


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
    secret = os.urandom(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secret).decode() + "\n")
    return secret


class Repository:
    def __init__(self, target: Target, writer: WriterKeys, recipients: list[PublicKey],
                 config: dict[str, Any], cache: IndexCache) -> None:
        self.target = target
        self.writer = writer
        self.recipients = recipients
        self.config = config
        self.cache = cache
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
        except ValueError as exc:
            raise RepositoryCorrupt(f"{target.label}: the repository config is unreadable "
                                    f"({exc})") from None
        return config

    @classmethod
    def open_for_writing(cls, target: Target, writer_secret: bytes,
                         recipients: list[PublicKey], cache_root: Path,
                         now: Callable[[], datetime] = lambda: datetime.now(UTC)
                         ) -> Repository:
        """Open (creating it on first use) with the orchestrator's writer key."""
        config = cls.read_config(target)
        writer = WriterKeys(writer_secret)
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
        return cls(target, writer, recipients, config, cache)

    @classmethod
    def open_with_key(cls, target: Target, key: PrivateKey, cache_root: Path) -> Repository:
        """Open for reading with a client (or escrow) private key."""
        config = cls.read_config(target)
        if config is None:
            raise StoreError(f"{target.label}: no repository here")
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
        backup that crashed after uploading them). Returns the number of packs adopted."""
        known = self.cache.known_index_files()
        names = [e.name for e in self.target.list("index")]
        for name in names:
            if name in known:
                continue
            for pack_id, size, entries in fmt.decode_index(self.target.get(name),
                                                           self.writer.index_key, name):
                self.cache.add_pack(pack_id, size, entries)
            self.cache.mark_index_files([name])
        gone = known - set(names)
        if gone:  # a prune rewrote the index: start again from the files that remain
            log.info("index files were removed from %s: rebuilding the cache", self.target.label)
            self.cache.remove_packs(list(self.cache.packs()))
            self.cache.forget_index_files(known)
            return self.sync_index()
        return len(self.adopt_orphans())

    def adopt_orphans(self) -> list[tuple[bytes, int, list[fmt.PackEntry]]]:
        indexed = self.cache.packs()
        adopted = []
        for entry in self.target.list("data"):
            pack_id = bytes.fromhex(entry.name.rsplit("/", 1)[-1])
            if pack_id in indexed:
                continue
            try:
                entries, _sealed = self.read_pack_header(pack_id, entry.size)
            except (RepositoryCorrupt, BaieError) as exc:
                log.warning("%s: unreadable pack %s left aside: %s", self.target.label,
                            entry.name, exc)
                continue
            self.cache.add_pack(pack_id, entry.size, entries)
            adopted.append((pack_id, entry.size, entries))
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
        """Every snapshot, oldest first (headers only: no key needed beyond the writer's).
        A file that is not a snapshot this writer signed (altered, padded, parts of two
        snapshots put together, another writer's) is left out and kept in :attr:`refused`;
        version 1 snapshots (unsigned) come with ``authenticated`` False."""
        out = []
        self.refused = {}
        for entry in self.target.list("snapshots"):
            data = self.target.get(entry.name)
            if fmt.sha256(data).hex() != entry.name.rsplit("/", 1)[-1]:
                raise RepositoryCorrupt(f"{self.target.label}: {entry.name} is damaged "
                                        "(its content does not match its name)")
            try:
                info = self._snapshot_info(entry.name, data)
            except RepositoryCorrupt as exc:
                log.warning("%s: %s refused: %s", self.target.label, entry.name, exc)
                self.refused[entry.name] = str(exc)
                continue
            out.append(info)
        return sorted(out, key=lambda s: (s.meta["time"], s.name))

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
