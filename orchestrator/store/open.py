"""Opening a client's repository as the configuration describes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.baie.open import open_target
from orchestrator.baie.target import Target
from orchestrator.config.load import LoadedConfig
from orchestrator.config.resolved import RepositorySettings
from orchestrator.errors import RepositoryCorrupt, StoreError, UsageError
from orchestrator.procs import machine_lock
from orchestrator.store.keys import PrivateKey, PublicKey, read_public_key
from orchestrator.store.repository import Repository, load_or_create_writer_secret


class NoRepository(StoreError):
    code = "HVB-STORE-NONE"


def recipients(settings: RepositorySettings) -> list[PublicKey]:
    """The client's public key, and the MSP escrow key when the client chose escrow."""
    if settings.public_key is None:
        raise UsageError(f"client {settings.client} has no encryption key configured")
    if settings.escrow_missing:
        raise UsageError("escrow is requested but msp.escrow_public_key_file is not set")
    keys = [read_public_key(settings.public_key)]
    if settings.escrow_key is not None:
        keys.append(read_public_key(settings.escrow_key))
    return keys


def default_baie(loaded: LoadedConfig, client: str, baie: str | None) -> str:
    if baie:
        return baie
    settings = loaded.config.clients.get(client)
    if settings is None:
        raise UsageError(f"no client {client!r} in {loaded.path}")
    copies = settings.copies or next((j.copies for j in settings.jobs.values() if j.copies), None)
    if not copies:
        raise UsageError(f"client {client} has no copies: name a baie with --baie")
    return copies[0]


def open_for_writing(settings: RepositorySettings, *, dry_run: bool = False,
                     create: bool = True,
                     sleep: Callable[[float], None] = time.sleep,
                     other: Target | None = None, maintenance: bool = False) -> Repository:
    """Open with the writer key; ``create``: make the repository if the baie has none
    (backups), else raise NoRepository (retention, prune, listings). ``other``: the second
    copy, from which a missing or damaged config is copied back. ``maintenance``: through
    the baie's maintenance access when it is append-only (the central server's)."""
    target = open_target(settings.baie, dry_run=dry_run, sleep=sleep, maintenance=maintenance)
    # Two runs of one client on this machine (two hosts, two schedulers) may both find no
    # repository on its first night: one creates it, the other then opens what it made,
    # never a second repository with other keys over the first.
    with machine_lock(settings.writer_key.with_name(f".{settings.writer_key.name}.lock")):
        return _open_for_writing(settings, target, create=create, other=other)


def _open_for_writing(settings: RepositorySettings, target: Target, *, create: bool,
                      other: Target | None) -> Repository:
    try:
        exists = Repository.read_config(target) is not None
    except RepositoryCorrupt:
        if other is None:
            target.close()
            raise
        exists = True  # the other copy's config is put back (Repository.open_for_writing)
    if not exists and other is not None and Repository.read_config(other) is not None:
        exists = True
    if not exists and not create:
        target.close()
        raise NoRepository(f"{settings.client} has no repository on baie {settings.baie.name} "
                           "(no backup yet)")
    try:
        secret = load_or_create_writer_secret(settings.writer_key, create=not exists)
    except StoreError:
        target.close()
        raise
    try:
        return Repository.open_for_writing(target, secret, recipients(settings),
                                           settings.cache, other=other)
    except StoreError:
        target.close()
        raise


def open_for_reading(settings: RepositorySettings, key: PrivateKey, cache: Path) -> Repository:
    return Repository.open_with_key(open_target(settings.baie), key, cache)
