"""Opening a client's repository as the configuration describes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.baie.open import open_target
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import StoreError, UsageError
from orchestrator.store.keys import PrivateKey, PublicKey, read_public_key
from orchestrator.store.repository import Repository, load_or_create_writer_secret


class NoRepository(StoreError):
    code = "HVB-STORE-NONE"


def writer_key_path(loaded: LoadedConfig, client: str) -> Path:
    return loaded.state_dir / "keys" / f"{client}.writer"


def cache_root(loaded: LoadedConfig, client: str) -> Path:
    return loaded.state_dir / "cache" / client


def recipients(loaded: LoadedConfig, client: str) -> list[PublicKey]:
    """The client's public key, and the MSP escrow key when the client chose escrow."""
    settings = loaded.config.clients[client]
    if settings.encryption is None:
        raise UsageError(f"client {client} has no encryption key configured")
    keys = [read_public_key(loaded.resolve(settings.encryption.public_key_file))]
    if settings.encryption.escrow:
        escrow = loaded.config.msp.escrow_public_key_file
        if not escrow:
            raise UsageError("escrow is requested but msp.escrow_public_key_file is not set")
        keys.append(read_public_key(loaded.resolve(escrow)))
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


def open_for_writing(loaded: LoadedConfig, client: str, baie: str, *,
                     dry_run: bool = False, create: bool = True,
                     sleep: Callable[[float], None] = time.sleep) -> Repository:
    """Open with the writer key; ``create``: make the repository if the baie has none
    (backups), else raise NoRepository (retention, prune, listings)."""
    target = open_target(loaded, baie, client, dry_run=dry_run, sleep=sleep)
    exists = Repository.read_config(target) is not None
    if not exists and not create:
        target.close()
        raise NoRepository(f"{client} has no repository on baie {baie} (no backup yet)")
    try:
        secret = load_or_create_writer_secret(writer_key_path(loaded, client), create=not exists)
    except StoreError:
        target.close()
        raise
    return Repository.open_for_writing(target, secret, recipients(loaded, client),
                                       cache_root(loaded, client))


def open_for_reading(loaded: LoadedConfig, client: str, baie: str | None,
                     key: PrivateKey, cache: Path) -> Repository:
    name = default_baie(loaded, client, baie)
    return Repository.open_with_key(open_target(loaded, name, client), key, cache)
